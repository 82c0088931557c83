"""Directo's own package: the core (`directo.core`), the `directo` command (`directo.cli`) and the simulator
(`directo.simulate`, a development tool loaded only by `directo simulate`)."""
