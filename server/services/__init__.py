"""Services: the server's own rules, between thin handlers and SQL-only storage."""
