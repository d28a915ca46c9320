"""The marketplace: hosts' rate cards, creator profiles and the creator directory
brands search (``API.md``). Wired by ``market.feature.setup_market``."""
