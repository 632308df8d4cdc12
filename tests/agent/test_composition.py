"""The agent is composed of parts that hold their own state, not mixins sharing private state.

``AgentLoop`` holds an ``Observer`` (detectors), a ``DecisionMaker`` (experiments, promotion),
``AgentControls`` (operator commands) and ``AgentMemory`` (the persisted record); none of them
reaches into another object's private members, and shutdown goes through ``AgentLoop.stop()``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from hydra_engine.agent import controls, core, decisions, loop, observe
from hydra_engine.agent.experiments import SubprocessExecutor
from hydra_engine.agent.loop import AgentConfig, AgentLoop, AutonomyLevel
from hydra_engine.model.registry import ModelRegistry

from .conftest import day, synthetic_bars

LEAN = ["ret_1", "ret_5", "ret_10", "vol_20"]
PART_MODULES = (loop, core, observe, decisions, controls)


def test_agent_loop_and_its_parts_inherit_nothing():
    from hydra_engine.agent.controls import AgentControls
    from hydra_engine.agent.core import AgentMemory, PhaseTracker
    from hydra_engine.agent.decisions import DecisionMaker
    from hydra_engine.agent.observe import Observer

    for cls in (AgentLoop, Observer, DecisionMaker, AgentControls, AgentMemory, PhaseTracker):
        assert cls.__mro__ == (cls, object), f"{cls.__name__} inherits {cls.__mro__[1:-1]}"


def test_no_part_reaches_into_another_objects_private_members():
    """``x._name`` is only ever ``self._name``: a part talks to another through its public methods."""
    offenders = []
    for mod in PART_MODULES:
        path = Path(mod.__file__)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    offenders.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert offenders == []


async def test_stop_cancels_background_experiments_and_a_restart_journals_them_abandoned(conn, tmp_path):
    bars = synthetic_bars(700, seed=5, coef=0.4, flip_at=402)
    registry = ModelRegistry(conn, tmp_path / "models")
    executor = SubprocessExecutor(2)
    # experiments from the first alarm on (not after the evidence since it): this is about their life cycle
    config = AgentConfig(experiment_time_limit_s=60, wf_test_window=30, wf_splits=3, wf_min_train=100, experiment_wait_s=0.05,
                         default_spec={"family": "logistic", "train_window_days": 250, "features": LEAN},
                         initial_autonomy=AutonomyLevel.AUTONOMOUS, evidence_since_alarm=False)
    agent = AgentLoop(conn, registry, executor, tmp_path / "exp", config)
    await agent.start()
    assert (await agent.run_cycle(day(bars.index[399]), bars.iloc[:400])).promoted is not None
    running: tuple[str, ...] = ()
    for i in range(400, 480):
        res = await agent.run_cycle(day(bars.index[i]), bars.iloc[: i + 1])
        if res.experiments_running:
            running = res.experiments_running
            break
    assert running, "no experiment was left running in the background"
    await agent.stop()
    assert executor.running == []  # the worker processes were killed, not orphaned
    await agent.stop()  # idempotent
    unfinished = [e for e in await agent.journal.experiments(limit=1000) if e.status == "RUNNING"]
    assert unfinished and {e.hypothesis_key for e in unfinished} == set(running)
    again = AgentLoop(conn, registry, executor, tmp_path / "exp", config)
    await again.start()
    rows = {e.experiment_id: e for e in await again.journal.experiments(limit=1000)}
    assert all(rows[e.experiment_id].status == "ABANDONED" for e in unfinished)
    res = await again.run_cycle(day(bars.index[i + 1]), bars.iloc[: i + 2])
    assert "still running" not in " ".join(res.notes)
