"""The app's screens: secondary views (reconciliation, journal, model, help) and modals."""
