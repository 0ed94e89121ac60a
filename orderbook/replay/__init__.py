"""A recording played back (docs/recording.md): the consolidated book at any recorded moment, rebuilt offline by
the service's own feed (``bin/book-at``: :mod:`.rebuild` takes the records, :mod:`.book_at` is the command)."""
