"""Operating for weeks: alerts, the heartbeat file, the gateway's restart window, retention and
bounded memory. Each module is one concept; ``service.Operations`` builds and runs them for the
engine. Nothing here imports ``hydra_tui``; the engine is the only caller of ``service``."""
