"""Routing: text processing, classification, gazetteer and dispatch catalogue."""
