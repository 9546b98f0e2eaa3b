"""Captions → alerts: rules, incidents and delivery to alert receivers."""
