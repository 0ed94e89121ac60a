"""Exchange protocols: wire parsing and the per-exchange sync rules, all pure (no I/O)."""
