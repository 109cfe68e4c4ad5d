"""Local stand-ins for the Google Calendar and Microsoft Graph/identity HTTP APIs.

Used by the tests and by ``tandem demo``; never by production.
"""
