"""Incremental sync of batch writes: the state of what HubSpot confirmed, and the diff against it."""
