"""The shared experiment machinery: fit() with checkpoints and exact resume, budgets,
non-finite handling, and the result tables over seeds."""

import math
import os
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from arma_experiments import results as R
from arma_experiments.training import Task, TrainState, fit, make_fabric, seeded, torch_threads


class Regression(Task):
    """y = 3 x - 1 by SGD; batches depend on (seed, epoch) only."""

    def __init__(self, seed=0, lr=0.05, blow_up_at=None):
        self.seed, self.lr, self.blow_up_at = seed, lr, blow_up_at
        self.config = {"seed": seed, "lr": lr}
        self.ends = 0

    def build(self):
        with seeded(self.seed):
            model = torch.nn.Linear(1, 1)
        return model, torch.optim.SGD(model.parameters(), lr=self.lr)

    def batches(self, epoch):
        g = torch.Generator().manual_seed(1000 * self.seed + epoch)
        x = torch.randn(6, 8, 1, generator=g)
        return [(xb, 3 * xb - 1) for xb in x]

    def training_step(self, fabric, model, batch, state):
        x, y = batch
        loss = torch.mean((model(x) - y) ** 2)
        if self.blow_up_at is not None and state.step + 1 >= self.blow_up_at:
            loss = loss * math.inf
        fabric.backward(loss)
        return {"loss": float(loss.detach())}

    def end_epoch(self, fabric, model, state):
        self.ends += 1
        return {"weight": float(model.weight)}

    def state_dict(self):
        return {"ends": self.ends}

    def load_state_dict(self, state):
        self.ends = state["ends"]


def test_fit_learns_and_checkpoints(tmp_path):
    state = fit(Regression(lr=0.1), make_fabric(), tmp_path, epochs=6, progress=False, log=lambda m: None)
    assert isinstance(state, TrainState) and state.epoch == 6 and state.step == 36
    assert state.history[-1]["train_loss"] < 1e-3 < state.history[0]["train_loss"]
    assert abs(state.history[-1]["weight"] - 3) < 0.05
    assert (tmp_path / "checkpoint.pt").exists()
    with pytest.raises(FileExistsError, match="resume"):
        fit(Regression(lr=0.1), make_fabric(), tmp_path, epochs=6, progress=False)


def test_resume_equals_uninterrupted(tmp_path):
    whole = fit(Regression(), make_fabric(), tmp_path / "a", epochs=4, progress=False, log=lambda m: None)
    fit(Regression(), make_fabric(), tmp_path / "b", epochs=2, progress=False, log=lambda m: None)
    task = Regression()
    resumed = fit(task, make_fabric(), tmp_path / "b", epochs=4, resume=True, progress=False, log=lambda m: None)
    assert task.ends == 4  # the task's own state came back from the checkpoint
    assert [h["weight"] for h in resumed.history] == [h["weight"] for h in whole.history]
    with pytest.raises(ValueError, match="lr"):
        fit(Regression(lr=0.1), make_fabric(), tmp_path / "b", epochs=5, resume=True, progress=False)


def test_nonfinite_raise_or_stop(tmp_path):
    with pytest.raises(FloatingPointError, match="step 3"):
        fit(Regression(blow_up_at=3), make_fabric(), tmp_path / "r", epochs=2, progress=False)
    state = fit(
        Regression(blow_up_at=3),
        make_fabric(),
        tmp_path / "s",
        epochs=2,
        nonfinite="stop",
        progress=False,
        log=lambda m: None,
    )
    assert state.stopped == "nonfinite" and state.nonfinite_step == 3 and state.epoch == 1


def test_budget_stops_between_epochs(tmp_path):
    state = fit(Regression(), make_fabric(), tmp_path, epochs=50, max_minutes=0.0, progress=False, log=lambda m: None)
    assert state.stopped == "budget" and state.epoch == 1


def test_scoped_state_is_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    torch.manual_seed(5)
    a = torch.rand(1)
    torch.manual_seed(5)
    with seeded(123):
        torch.rand(3)
    assert torch.equal(torch.rand(1), a)


def test_stats_and_two_standard_errors():
    s = R.stat([1.0, 2.0, 3.0])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert math.isclose(s.sem, 1 / math.sqrt(3))
    assert R.stat([4.0]).std == 0.0 and R.stat([]).n == 0
    near = R.compare(R.stat([1.0, 2.0, 3.0]), R.stat([2.0, 3.0, 4.0]))
    assert near.difference == -1.0 and not near.significant  # 1 < 2 * sqrt(2/3)
    far = R.compare(R.stat([1.0, 1.1, 0.9]), R.stat([2.0, 2.1, 1.9]))
    assert far.significant
    rows = [{"m": "a", "metrics": {"x": 1.0}}, {"m": "a", "metrics": {"x": 3.0}}, {"m": "b", "metrics": {}}]
    out = R.summarize(rows, by=("m",), metrics=("metrics.x",))
    assert out[("a",)]["metrics.x"].mean == 2.0 and out[("b",)]["metrics.x"].n == 0
    assert R.format_stat(out[("b",)]["metrics.x"]) == "n/a"
    # one seed: no spread, and no difference is significant against it
    assert R.format_stat(R.stat([4.0]), 2) == "4.00 (n=1)"
    one = R.compare(R.stat([4.0]), R.stat([1.0, 1.1, 0.9]))
    assert one.difference == 3.0 and math.isnan(one.se) and not one.significant


def test_tables_and_collect(tmp_path):
    R.write_json({"a": 1, "v": [1, 2]}, tmp_path / "x" / "results.json")
    R.write_json({"a": 2}, tmp_path / "y" / "results.json")
    assert [r["a"] for r in R.collect(tmp_path)] == [1, 2]
    md = R.markdown_table(["a", "b"], [[1, "2 ± 3"]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 ± 3 |"]
    p = R.write_csv(tmp_path / "t.csv", ["a", "b"], [[1, 2]])
    assert p.read_text().splitlines() == ["a,b", "1,2"]


def test_environment_sets_keeps_and_restores(monkeypatch):
    from arma_experiments.training import environment

    monkeypatch.setenv("ARMA_TEST_SET", "caller")
    monkeypatch.delenv("ARMA_TEST_NEW", raising=False)
    with environment({"ARMA_TEST_SET": "1", "ARMA_TEST_NEW": "2"}, keep_existing=True):
        assert os.environ["ARMA_TEST_SET"] == "caller" and os.environ["ARMA_TEST_NEW"] == "2"
    assert os.environ["ARMA_TEST_SET"] == "caller" and "ARMA_TEST_NEW" not in os.environ
    with pytest.raises(RuntimeError), environment({"ARMA_TEST_SET": "1"}):
        assert os.environ["ARMA_TEST_SET"] == "1"
        raise RuntimeError
    assert os.environ["ARMA_TEST_SET"] == "caller"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux: /proc; elsewhere a signal 0)."""
    status = f"/proc/{pid}/status"
    if os.path.exists("/proc"):
        try:
            with open(status) as f:
                return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
        except FileNotFoundError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process semantics")
def test_worker_pool_workers_die_with_their_parent(tmp_path):
    # a parent that starts one busy worker and is then killed hard (no chance to clean up)
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from arma_experiments.training import worker_pool\n"
        "if __name__ == '__main__':\n"
        "    pool = worker_pool(1)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 120)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(proc.stdout.readline())
        assert _alive(worker)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived its killed parent"
    finally:
        proc.kill()
        proc.stdout.close()
