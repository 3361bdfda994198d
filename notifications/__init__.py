"""Who hears about what: the outbox of every email and calendar invitation (`Delivery`)."""
