"""Recording what the venues sent (``bin/run-server --record DIR``) and reading it back: the format
(:mod:`.format`, docs/recording.md), the writer off the hot path (:mod:`.writer`), the taps on the transport and
REST boundaries (:mod:`.tap`) and the reader (:mod:`.reader`)."""
