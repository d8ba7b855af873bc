"""scripts/sweep.py: task enumeration, run-directory naming, CLI modes, and a real 2-seed sweep end to end."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.errors import ConfigError
from reporting.report import report_main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "tiny_mnist.yaml"


def _load_sweep_module():
    spec = importlib.util.spec_from_file_location("sweep_script", ROOT / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


sweep = _load_sweep_module()


def write_sweep(tmp_path: Path, **spec) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_tasks_are_the_cartesian_product_with_named_run_dirs(tmp_path):
    other = tmp_path / "biased.yaml"
    other.write_text(TINY.read_text())
    path = write_sweep(tmp_path, configs=[str(TINY), str(other)], seeds=[0, 1, 2],
                       overrides=[{}, {"data.regime.synthetic_share": 0.0}], grid={"loop.generations": [1, 3]},
                       out=str(tmp_path / "out"))
    tasks = sweep.load_sweep(path)
    assert len(tasks) == 2 * 2 * 2 * 3
    assert [t.index for t in tasks] == list(range(24))
    first, last = tasks[0], tasks[-1]
    assert first.run_dir == str(tmp_path / "out" / "tiny_mnist__generations-1" / "seed_0")
    assert first.overrides == (("loop.generations", 1),)
    assert last.run_dir == str(tmp_path / "out" / "biased__synthetic_share-0.0_generations-3" / "seed_2")
    assert last.overrides == (("data.regime.synthetic_share", 0.0), ("loop.generations", 3))
    assert len({t.run_dir for t in tasks}) == 24
    combos = {(t.config, t.overrides, t.seed) for t in tasks}
    assert len(combos) == 24
    command = last.command(python="python")
    assert command[2:] == ["fit", "--config", str(other), "--data.regime.synthetic_share", "0.0",
                           "--loop.generations", "3", "--seed_everything", "2", "--loop.run_dir", last.run_dir]


def test_without_overrides_the_folder_is_the_config_stem(tmp_path):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[4], out="runs/sweeps/x")
    (task,) = sweep.load_sweep(path)
    assert task.run_dir == str(Path("runs/sweeps/x/tiny_mnist/seed_4"))
    long = sweep.override_slug((("data.source.init_args.color_probs", [[0.8, 0.15, 0.05]] * 10),))
    assert len(long) <= sweep.MAX_SLUG and long.startswith("color_probs-")


@pytest.mark.parametrize(("spec", "message"), [
    ({"seeds": [0]}, "'configs' must be"),
    ({"configs": ["nope.yaml"], "seeds": [0], "out": "o"}, "config files not found"),
    ({"configs": [str(TINY)], "seeds": [0, 0], "out": "o"}, "repeats"),
    ({"configs": [str(TINY)], "seeds": [0], "out": "o", "overrides": {"a": 1}}, "list of dicts"),
    ({"configs": [str(TINY)], "seeds": [0], "out": "o", "overrides": [{"seed_everything": 3}]}, "not allowed"),
    ({"configs": [str(TINY)], "seeds": [0], "out": "o", "grid": {"a": 1}}, "non-empty lists"),
    ({"configs": [str(TINY)], "seeds": [0]}, "'out' must"),
    ({"configs": [str(TINY)], "seeds": [0], "out": "o", "extra": 1}, "unknown keys"),
])
def test_bad_sweep_files_are_refused(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message):
        sweep.load_sweep(write_sweep(tmp_path, **spec))


def test_list_count_task_and_dry_run_modes(tmp_path, capsys):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1], overrides=[{"loop.generations": 1}],
                       out=str(tmp_path / "out"))
    assert sweep.main([str(path), "--count"]) == 0
    assert capsys.readouterr().out.strip() == "2"
    assert sweep.main([str(path), "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [
        ["0", str(tmp_path / "out" / "tiny_mnist__generations-1" / "seed_0")],
        ["1", str(tmp_path / "out" / "tiny_mnist__generations-1" / "seed_1")]]
    assert sweep.main([str(path), "--task", "1", "--dry-run"]) == 0
    assert "--seed_everything 1" in capsys.readouterr().out
    assert sweep.main([str(path), "--task", "2"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_listing_piped_into_head_ends_quietly(tmp_path):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=list(range(2000)), out=str(tmp_path / "out"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "sweep.py"), str(path), "--list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("0\t")
    proc.stdout.close()  # what `| head -1` does: the reader goes away long before 2,000 lines are written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_data_regimes_sweep_runs_past_the_stack_window():
    """With a stack of 3, fifo, accumulate and subsample hold the same blocks up to generation 3."""
    tasks = sweep.load_sweep(ROOT / "configs" / "sweeps" / "data_regimes.yaml", check_configs=False)
    policies = {dict(task.overrides)["data.regime.policy"] for task in tasks}
    assert policies == {"fifo", "replace", "accumulate", "subsample"}
    window = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())["data"]["regime"]["window"]
    assert all(dict(task.overrides)["loop.generations"] > window for task in tasks)


def test_paper_seeds_sweep_file_has_three_seeds_per_configuration():
    tasks = sweep.load_sweep(ROOT / "configs" / "sweeps" / "paper_seeds.yaml", check_configs=False)
    by_config: dict[tuple, list[int]] = {}
    for task in tasks:
        by_config.setdefault((task.config, task.overrides), []).append(task.seed)
    assert by_config and all(seeds == [0, 1, 2] for seeds in by_config.values())


def test_sbatch_file_runs_one_task_per_array_entry_and_requeues_from_the_shell():
    text = (ROOT / "scripts" / "slurm" / "sweep.sbatch").read_text()
    # no fixed --array: one that did not match the sweep's count silently skipped tasks
    assert "#SBATCH --array=" not in text and "#SBATCH --requeue" in text and "--gres=gpu:1" in text
    assert '--check-array ${TASKS:+--tasks "$TASKS"} || exit 2' in text
    assert 'srun python scripts/sweep.py "$SWEEP" --task "$SLURM_ARRAY_TASK_ID" &' in text
    # the signal goes to the batch shell, which requeues at any moment (Lightning's handler only lives in a Trainer)
    assert "#SBATCH --signal=B:USR1@90" in text and "trap requeue USR1" in text
    assert 'scontrol requeue "$JOB_ID"' in text and "--signal=SIGUSR1" not in text


@pytest.mark.parametrize(("cores", "jobs", "threads"), [(2, 1, 2), (2, 2, 1), (8, 3, 2), (2, 4, 1), (16, 4, 4)])
def test_threads_per_job_divide_the_cores(cores, jobs, threads):
    assert sweep.threads_per_job(jobs, cores) == threads


def test_available_cores_come_from_the_affinity_capped_by_slurm(monkeypatch):
    monkeypatch.setattr(sweep.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert sweep.available_cores() == 8
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert sweep.available_cores() == 4
    monkeypatch.setattr(sweep.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert sweep.available_cores() == 2  # the affinity is what the process can run on


def test_concurrent_jobs_run_together_each_with_its_share_of_the_cores(tmp_path, monkeypatch, capsys):
    """Two stand-in tasks that each wait for the other to have started (so they must run at the same time) and
    record the OMP_NUM_THREADS they were given: 4 cores, 2 jobs -> 2 threads each."""
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1, 2], out=str(tmp_path / "out"))
    tasks = sweep.load_sweep(path)
    script = ("import os, pathlib, sys, time; d = pathlib.Path(sys.argv[1]); i = sys.argv[2]; "
              "(d / f'start_{i}').write_text(os.environ['OMP_NUM_THREADS']); "
              "deadline = time.monotonic() + 60; partner = {'0': '1', '1': '0'}.get(i)\n"
              "while partner and not (d / f'start_{partner}').exists() and time.monotonic() < deadline: "
              "time.sleep(0.05)\n"
              "sys.exit(0 if partner is None or (d / f'start_{partner}').exists() else 3)")
    monkeypatch.setattr(sweep.SweepTask, "command",
                        lambda self, python=sys.executable: [python, "-c", script, str(tmp_path), str(self.index)])
    monkeypatch.setattr(sweep, "available_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    failed = sweep.run_concurrently(tasks, 2, tmp_path / "logs")
    assert failed == []
    assert [(tmp_path / f"start_{i}").read_text() for i in range(3)] == ["2", "2", "2"]
    assert "2 tasks at a time on 4 core(s): 2 thread(s) each" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["task_0.log", "task_1.log", "task_2.log"]

    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # exported by the user: it wins
    assert sweep.run_concurrently(tasks[2:], 2, tmp_path / "logs") == []
    assert (tmp_path / "start_2").read_text() == "3"


def test_jobs_option_is_checked_and_shown_in_a_dry_run(tmp_path, monkeypatch, capsys):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1], out=str(tmp_path / "out"))
    monkeypatch.setattr(sweep, "available_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert sweep.main([str(path), "--jobs", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ") == 2 and not (tmp_path / "out").exists()
    assert sweep.main([str(path), "--jobs", "0"]) == 2
    assert "--jobs 0" in capsys.readouterr().err
    assert sweep.main([str(path), "--jobs", "2", "--task", "0"]) == 2
    assert "use one or the other" in capsys.readouterr().err


def test_is_finished_needs_every_generation_and_classifier(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"loop": {"generations": 1},
                                                     "classifiers": [{"arch": "lenet", "name": None}]}))
    (run / "results.jsonl").write_text('{"generation": 0, "classifier": "lenet", "dataset": "d"}\n')
    assert not sweep.is_finished(run)
    (run / "results.jsonl").write_text('{"generation": 0, "classifier": "lenet", "dataset": "d"}\n'
                                       '{"generation": 1, "classifier": "lenet", "dataset": "d"}\n')
    assert sweep.is_finished(run)
    assert not sweep.is_finished(tmp_path / "missing")


@pytest.mark.slow
def test_tiny_two_seed_sweep_end_to_end(tmp_path):
    """~35 s on 2 CPU cores: two seeds of the tiny MNIST loop (1 generation) through the real script."""
    out = tmp_path / "out"
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1],
                       overrides=[{"loop.generations": 1, "loop.samples_per_generation": 50,
                                   "data.source.init_args.max_train_samples": 200}], out=str(out))
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep.py"), str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "python cli.py report" in result.stdout
    folder = out / "tiny_mnist__generations-1_samples_per_generation-50_max_train_samples-200"
    assert sorted(p.name for p in folder.iterdir()) == ["seed_0", "seed_1"]

    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep.py"), str(path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("already finished, skipped") == 2

    report_main([str(out / "*" / "seed_*")], str(tmp_path / "report"))
    with open(tmp_path / "report" / "aggregate.csv", newline="") as f:
        stats = [r for r in csv.DictReader(f) if r["metric"] == "acc"]
    assert {r["group"] for r in stats} == {folder.name}
    assert {(r["classifier"], r["generation"], r["n"]) for r in stats} == {("tiny_cnn", "0", "2"),
                                                                           ("tiny_cnn", "1", "2")}


# ------------------------------------------------------------------------------------------------ SLURM submission
def _sbatch_lines(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.startswith("sbatch ")]


def _option(line: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in line if arg.startswith(f"--{name}=")]
    return value


def test_submit_dry_run_covers_every_task_of_the_paper_sweep_once_with_its_resources(capsys):
    """configs/sweeps/paper_seeds.yaml: 6 configs x 3 seeds = 18 tasks; the two Stable Diffusion configs get 8 GPUs
    and 48 h, the others 1 GPU."""
    sweep_file = "configs/sweeps/paper_seeds.yaml"
    assert sweep.main([sweep_file, "--submit", "--dry-run", "--max-parallel", "4"]) == 0
    out = capsys.readouterr().out
    lines = _sbatch_lines(out)
    covered = [i for line in lines for i in sweep.parse_array_spec(_option(line, "array"))]
    assert sorted(covered) == list(range(18))  # every task, none twice
    by_gpus = {_option(line, "gres"): line for line in lines}
    assert set(by_gpus) == {"gpu:1", "gpu:8"}
    small, large = by_gpus["gpu:1"], by_gpus["gpu:8"]
    assert _option(small, "array") == "0-11%4" and _option(large, "array") == "12-17%4"
    assert _option(large, "ntasks-per-node") == "8" and _option(large, "time") == "48:00:00"
    assert _option(small, "ntasks-per-node") == "1" and _option(small, "time") == "24:00:00"
    assert small[-3:] == ["scripts/slurm/sweep.sbatch", sweep_file, "0-11"]  # the template is told its tasks
    tasks = sweep.load_sweep(ROOT / sweep_file)
    assert {Path(tasks[i].config).stem for i in range(12, 18)} == {"hardimagenet", "breeds_living17"}
    assert "would submit 18 of 18 tasks in 2 array(s)" in out


def test_resubmission_skips_finished_runs(tmp_path, capsys):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1, 2, 3], out=str(tmp_path / "out"),
                       resources={"gpus_per_node": 0, "cpus_per_task": 1, "time": "00:10:00"})
    tasks = sweep.load_sweep(path)
    config = yaml.safe_load(TINY.read_text())
    for task in (tasks[1], tasks[2]):  # two finished runs: every (generation, classifier) has its row
        run = Path(task.run_dir)
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        (run / "results.jsonl").write_text("".join(
            f'{{"generation": {g}, "classifier": "{c.get("name") or c["arch"]}", "dataset": "colored_mnist"}}\n'
            for g in range(config["loop"]["generations"] + 1) for c in config["classifiers"]))
    assert sweep.main([str(path), "--submit", "--dry-run"]) == 0
    out = capsys.readouterr().out
    (line,) = _sbatch_lines(out)
    assert _option(line, "array") == "0,3" and line[-1] == "0,3"
    assert _option(line, "gres") == "none" and _option(line, "cpus-per-task") == "1"
    assert "already finished, skipped" in out and "(2 finished, skipped)" in out


def test_array_specs_round_trip():
    assert sweep.array_spec([0, 1, 2, 6, 9, 10, 11]) == "0-2,6,9-11"
    assert sweep.array_spec([5]) == "5"
    assert sweep.parse_array_spec("0-2,6,9-11%3") == [0, 1, 2, 6, 9, 10, 11]
    assert sweep.parse_array_spec("0-6:3") == [0, 3, 6]
    with pytest.raises(ConfigError, match="not a SLURM --array value"):
        sweep.parse_array_spec("0-x")


def _array_env(ids: list[int], task: int) -> dict[str, str]:
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(len(ids)),
            "SLURM_ARRAY_TASK_MIN": str(min(ids)), "SLURM_ARRAY_TASK_MAX": str(max(ids))}


def test_an_array_that_does_not_cover_the_sweep_is_refused_naming_the_right_array(tmp_path):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=list(range(18)), out=str(tmp_path / "out"))
    tasks = sweep.load_sweep(path)
    assert sweep.check_array(str(path), tasks, None, _array_env(list(range(18)), 17)) is None
    problem = sweep.check_array(str(path), tasks, None, _array_env(list(range(15)), 3))  # the old 0-14
    assert problem == (f"the array (0-14, 15 tasks) does not match {path} (18 tasks expected): submit with "
                       f"--array=0-17, or use python scripts/sweep.py {path} --submit")
    assert "--array=0-17" in sweep.check_array(str(path), tasks, None, _array_env(list(range(20)), 19))
    # what --submit gave one array of a group: its own tasks, no more, no fewer
    assert sweep.check_array(str(path), tasks, "12-17", _array_env(list(range(12, 18)), 12)) is None
    assert "--array=12-17" in sweep.check_array(str(path), tasks, "12-17", _array_env(list(range(12, 17)), 12))
    assert "not an array job" in sweep.check_array(str(path), tasks, None, {})


def test_the_sbatch_template_stops_a_wrong_array_with_one_line(tmp_path):
    """sweep.sbatch run as SLURM runs it for array task 3 of --array=0-14 on an 18-task sweep: exit 2 before srun."""
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=list(range(18)), out=str(tmp_path / "out"))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SLURM_SUBMIT_DIR": str(ROOT),
           "PYTHONPATH": str(ROOT), **_array_env(list(range(15)), 3)}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "slurm" / "sweep.sbatch"), str(path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert errors == [f"sweep.sbatch: error: the array (0-14, 15 tasks) does not match {path} (18 tasks expected): "
                      f"submit with --array=0-17, or use python scripts/sweep.py {path} --submit"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("resources", "message"), [
    ({"gpus_per_node": -1}, "resources.gpus_per_node must be an integer >= 0"),
    ({"nodes": 0}, "resources.nodes must be an integer >= 1"),
    ({"time": 3600}, "resources.time must be a SLURM value"),
    ({"gpus": 2}, "'resources' must map some of"),
])
def test_bad_resources_are_refused(tmp_path, resources, message):
    path = write_sweep(tmp_path, configs=[{"path": str(TINY), "resources": resources}], seeds=[0], out="o")
    with pytest.raises(ConfigError, match=message):
        sweep.load_sweep(path)


def test_a_task_given_several_processes_runs_them_as_ddp_ranks():
    env = {"SLURM_NTASKS": "16", "SLURM_NTASKS_PER_NODE": "8", "SLURM_NNODES": "2"}
    assert sweep.allocation_overrides(env) == ["--trainer.devices", "8", "--trainer.num_nodes", "2",
                                               "--trainer.strategy", "ddp"]
    assert sweep.allocation_overrides({"SLURM_NTASKS": "1"}) == []


def test_local_jobs_get_a_gpu_each_and_more_jobs_than_gpus_need_share(tmp_path, monkeypatch, capsys):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1, 2], out=str(tmp_path / "out"))
    monkeypatch.setattr(sweep, "available_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,7")  # a node with two GPUs visible
    assert sweep.visible_gpus() == ["4", "7"]
    assert sweep.main([str(path), "--jobs", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --jobs 3 asks more jobs than the 2 GPU(s) here (4,7) can give 1 each: use --jobs 2, or add "
        "--share-gpus to let jobs share GPUs")
    assert sweep.main([str(path), "--jobs", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "CUDA_VISIBLE_DEVICES=4 " in out and "CUDA_VISIBLE_DEVICES=7 " in out
    assert sweep.main([str(path), "--jobs", "3", "--share-gpus", "--dry-run"]) == 0
    gpus = [line.split("CUDA_VISIBLE_DEVICES=")[1].split()[0] for line in capsys.readouterr().out.splitlines()
            if "CUDA_VISIBLE_DEVICES=" in line]
    assert gpus == ["4", "7", "4"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: CPU jobs as before, any number
    assert sweep.main([str(path), "--jobs", "3", "--dry-run"]) == 0
    assert "CUDA_VISIBLE_DEVICES" not in capsys.readouterr().out


def test_local_jobs_get_groups_of_gpus_or_all_of_them(tmp_path, monkeypatch, capsys):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1, 2], out=str(tmp_path / "out"))
    monkeypatch.setattr(sweep, "available_cores", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4")

    def devices_per_task() -> list[str]:
        return [line.split("CUDA_VISIBLE_DEVICES=")[1].split()[0] for line in capsys.readouterr().out.splitlines()
                if "CUDA_VISIBLE_DEVICES=" in line]

    assert sweep.main([str(path), "--jobs", "2", "--gpus-per-job", "2", "--dry-run"]) == 0
    assert devices_per_task() == ["0,1", "2,3", "0,1"]  # GPU 4 left over
    assert sweep.main([str(path), "--jobs", "3", "--gpus-per-job", "all", "--dry-run"]) == 0
    assert devices_per_task() == ["0,1,2,3,4"] * 3  # the seeds share the node
    assert sweep.main([str(path), "--jobs", "3", "--gpus-per-job", "2"]) == 2
    assert "--jobs 3 asks more jobs than the 5 GPU(s) here (0,1,2,3,4) can give 2 each: use --jobs 2" in \
        capsys.readouterr().err
    assert sweep.main([str(path), "--jobs", "2", "--gpus-per-job", "6"]) == 2
    assert "--gpus-per-job 6 asks more GPUs than the 5 here" in capsys.readouterr().err
    assert sweep.main([str(path), "--jobs", "2", "--gpus-per-job", "0"]) == 2
    assert "give a number of GPUs (1 or more) or all" in capsys.readouterr().err


def test_an_array_task_takes_its_dataloader_workers_from_its_cpus(tmp_path, monkeypatch, capsys):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0], out=str(tmp_path / "out"))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert sweep.main([str(path), "--task", "0", "--dry-run"]) == 0  # what the array task would exec
    assert capsys.readouterr().out.rstrip().endswith("--data.num_workers 3")
    assert "--data.num_workers" not in sweep.load_sweep(path)[0].command()  # a local run keeps the config's value


# ------------------------------------------------------------------------------------ every task checked first
@pytest.mark.parametrize("mode", [["--list"], ["--submit", "--dry-run"], ["--submit"], [], ["--jobs", "2"]])
def test_a_task_the_cli_would_refuse_stops_the_whole_listing_or_submission(tmp_path, capsys, mode):
    """An override key typo and a smoke setting are found by the CLI's own parser before anything is listed or
    submitted: exit 2, one line per bad task, no sbatch line (nor a call to sbatch)."""
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1],
                       overrides=[{}, {"loop.generatons": 3}, {"trainer.limit_train_batches": 0.1}],
                       out=str(tmp_path / "out"), resources={"gpus_per_node": 0})
    assert sweep.main([str(path), *mode]) == 2
    captured = capsys.readouterr()
    assert "sbatch" not in captured.out and captured.out.strip() == ""
    errors = captured.err.strip().splitlines()
    typo = "unknown option `--loop.generatons`: did you mean `loop.generations`"
    assert [line.split(": ", 2)[1].split(" ")[:2] for line in errors[:-1]] == [
        ["task", "2"], ["task", "3"], ["task", "4"], ["task", "5"]]
    assert typo in errors[0] and typo in errors[1]
    assert "smoke settings trainer.limit_train_batches=0.1" in errors[2] and "smoke settings" in errors[3]
    assert errors[-1].startswith(f"error: 4 of 6 tasks of {path} cannot run: nothing was")
    assert not (tmp_path / "out").exists()


def test_a_sweep_whose_tasks_all_parse_is_listed(tmp_path, capsys):
    path = write_sweep(tmp_path, configs=[str(TINY)], seeds=[0, 1, 2], overrides=[{"loop.generations": 1}],
                       out=str(tmp_path / "out"))
    assert sweep.task_problems(sweep.load_sweep(path)) == []
    assert sweep.main([str(path), "--list"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
