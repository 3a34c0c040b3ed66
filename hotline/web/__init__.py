"""The web assembly: JSON API, pages and the ASGI app."""
