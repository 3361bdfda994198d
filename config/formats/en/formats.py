"""One date format wherever Django formats a date without being told how: above all the admin's
lists and pages ("2 Dec 2026, 11:00"), which otherwise mix "Dec. 2, 2026, 11 a.m." and ISO."""

DATE_FORMAT = "j M Y"
SHORT_DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
TIME_FORMAT = "H:i"
