"""The shared kernel: what every app needs, in one place, importing no project app.

errors        DomainError (a refusal fit to show a person) and PermissionDenied
money         parse_money / format_money: the one parser and formatter of every money field
forms         MoneyField: a form field reading money with parse_money
times         the one way a time is worded (viewer's timezone, with its abbreviation)
transactions  on_commit: after-commit hooks that log a failure instead of raising it
bulk          set-based inserts (COPY on PostgreSQL) and updates by primary key, no instances
guards        coach_required (a view decorator), safe_next_url
admin         read-only admin pages, money and email columns, number-or-text search
cache         FailOpenRedisCache: the Redis cache backend that survives Redis being down
"""
