"""The domain, one package per area, imports pointing down:
polls -> meetings -> availability -> calendars -> people, with invites (mail), audit,
validation and errors underneath. ``key_rotation`` and ``demo`` work across the whole
installation. See docs/architecture.md.
"""
