"""Organization-wide calendar integrations: one credential covers many people.

``setup`` holds the rules of who may do what (the operator switch, global administrators
integrating and disabling), the Microsoft admin-consent flow, the Google key and
disabling; ``cover`` connects covered people automatically and reports coverage;
``sync`` refreshes covered people's busy times in batches; ``directory`` opens an
integration's directory. Sits between calendars and availability: imports calendars,
people, audit, errors and validation only.
"""

__all__ = ["cover", "directory", "setup", "sync"]
