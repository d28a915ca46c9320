"""The shelf: brands' catalogues, cooperation agreements, live shelves, pins, flash
sales and stock on screen. ``shelf.feature.build_shelf`` wires it; see ``API.md``."""
