"""Background work: calendar sync, retries, poll deadlines and reminders."""
