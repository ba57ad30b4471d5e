"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_hubcomm import __version__

_SECRET = "password"


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: components and the ``hubcomm`` connection type with its form."""
    return {
        "package-name": "airflow-provider-hubcomm",
        "name": "HubSpot Communication Preferences",
        "description": "Push email consent from your warehouse into HubSpot's Communication Preferences API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "HubSpot Communication Preferences",
                "external-doc-url": "https://developers.hubspot.com/docs/api-reference/communication-preferences",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "HubSpot Communication Preferences",
                "python-modules": ["airflow_provider_hubcomm.hooks.hubcomm"],
            }
        ],
        "operators": [
            {
                "integration-name": "HubSpot Communication Preferences",
                "python-modules": [
                    "airflow_provider_hubcomm.operators.hubcomm",
                    "airflow_provider_hubcomm.operators.batch",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "HubSpot Communication Preferences",
                "python-modules": ["airflow_provider_hubcomm.sensors.hubcomm"],
            }
        ],
        "triggers": [
            {
                "integration-name": "HubSpot Communication Preferences",
                "python-modules": ["airflow_provider_hubcomm.triggers.hubcomm"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "hubcomm",
                "hook-class-name": "airflow_provider_hubcomm.hooks.hubcomm.HubCommHook",
                "hook-name": "HubSpot Communication Preferences",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "API base URL", "password": "Private app access token"},
                    "placeholders": {
                        "host": "https://api.hubapi.com",
                        "password": "pat-na1-… (leave empty for OAuth)",
                    },
                },
                "conn-fields": {
                    "auth_type": {
                        "label": "Auth type",
                        "description": "private_app: the access token above. oauth: client id/secret + refresh token.",
                        "schema": {
                            "type": "string",
                            "enum": ["private_app", "oauth"],
                            "default": "private_app",
                        },
                    },
                    "client_id": {
                        "label": "OAuth client ID",
                        "description": "OAuth app client id (auth type oauth).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "client_secret": {
                        "label": "OAuth client secret",
                        "description": "OAuth app client secret (auth type oauth).",
                        "schema": {"type": ["string", "null"], "format": _SECRET},
                    },
                    "refresh_token": {
                        "label": "OAuth refresh token",
                        "description": "Refresh token granted to the app (auth type oauth).",
                        "schema": {"type": ["string", "null"], "format": _SECRET},
                    },
                    "token_url": {
                        "label": "OAuth token URL",
                        "description": "Defaults to <base URL>/oauth/v3/token (v1 is sunset on 2027-02-16).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "business_unit_id": {
                        "label": "Business unit (brand) ID",
                        "description": "Default brand for unsubscribe-all and reads; 0 is the account brand.",
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                    "business_unit_ids": {
                        "label": "Brand IDs of the account",
                        "description": "Comma-separated brand (business unit) ids, e.g. 0,7: subscriptions are "
                        "looked up in each, and statuses read with their own brand.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "portal_id": {
                        "label": "Account (portal) ID",
                        "description": "Optional: names this account in lineage (OpenLineage datasets).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "api_version": {
                        "label": "API version",
                        "description": "Communication Preferences API version of every endpoint (v4 ends on "
                        "2027-03-30).",
                        "schema": {"type": ["string", "null"], "default": "2026-03"},
                    },
                    "requests_per_10s": {
                        "label": "Rate budget (requests per 10 s)",
                        "description": "The account's burst limit, e.g. 100 or 190. Learned from headers if empty.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 10000},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Total time of one HTTP attempt, connect to last byte (a retry gets its own).",
                        "schema": {"type": ["number", "null"], "minimum": 1, "default": 30},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries for connect errors, timeouts, 429 and 5xx (capped backoff).",
                        "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 20, "default": 5},
                    },
                },
            }
        ],
    }
