"""Apache Airflow provider for HubSpot's Communication Preferences API.

Importing this package is cheap: it pulls in neither Airflow nor httpx. The hook, operators, sensor and
trigger live in their sub-packages and import their dependencies lazily.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
