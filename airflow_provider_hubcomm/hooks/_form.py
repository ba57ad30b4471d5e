"""The connection form for Airflow < 3.2 (newer versions read ``conn-fields`` from the provider info)."""

from __future__ import annotations

from typing import Any

__all__ = ["connection_form_widgets", "ui_field_behaviour"]


def ui_field_behaviour() -> dict[str, Any]:
    """Return hidden fields, relabelings and placeholders of the ``hubcomm`` form."""
    from airflow_provider_hubcomm.get_provider_info import get_provider_info

    behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    return {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }


def connection_form_widgets() -> dict[str, Any]:
    """Return the extra form fields (needs Flask-AppBuilder's widgets, absent in newer Airflow)."""
    try:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from wtforms import PasswordField, StringField
    except ImportError:
        return {}
    from airflow_provider_hubcomm.get_provider_info import get_provider_info

    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    widgets: dict[str, Any] = {}
    for name, spec in fields.items():
        secret = spec["schema"].get("format") == "password"
        kind, widget = (PasswordField, BS3PasswordFieldWidget) if secret else (StringField, BS3TextFieldWidget)
        widgets[name] = kind(spec["label"], widget=widget(), description=spec.get("description"))
    return widgets
