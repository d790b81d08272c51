"""Request plumbing shared by the pages (``web/``) and the JSON API (``api/``).

Both front ends depend on this package; neither imports the other.
"""
