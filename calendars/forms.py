"""Forms for the Availability page (weekly hours, one-off windows, time off)."""
