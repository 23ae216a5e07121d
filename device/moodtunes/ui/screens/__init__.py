"""The kiosk's screens, one per step of a visit (see docs/kiosk.md for the flow)."""
