"""The shelf: brands' catalogues, cooperation agreements, live shelves, pins, flash
sales and stock on screen. ``shelf.feature`` wires it (``setup_shelf``, ``setup_orders``,
``setup_stats``); see ``API.md``."""
