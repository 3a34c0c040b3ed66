"""The hotline command, run as a real process from an unrelated directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args, cwd, env=None, stdin=""):
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HOTLINE_REGION")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hotline.cli", *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_creates_a_sqlite_database_in_the_current_directory_and_prints_demo_passwords(tmp_path):
    r = run(["init"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "hotline.sqlite3").exists()
    assert "admin" in r.stdout and "dispatcher" in r.stdout
    again = run(["init"], tmp_path)
    assert again.returncode == 0
    assert "已存在" in again.stdout


def test_createuser_takes_the_password_from_stdin_and_refuses_bad_input(tmp_path):
    assert run(["init", "--no-demo"], tmp_path).returncode == 0
    ok = run(["createuser", "alice", "--role", "agent"], tmp_path, stdin="long-enough-pass1\n")
    assert ok.returncode == 0, ok.stderr
    dup = run(["createuser", "alice", "--role", "agent"], tmp_path, stdin="long-enough-pass1\n")
    assert dup.returncode == 1 and "已存在" in dup.stderr
    weak = run(["createuser", "bob", "--role", "agent"], tmp_path, stdin="short\n")
    assert weak.returncode == 2 and "密码" in weak.stderr
    role = run(["createuser", "bob", "--role", "boss"], tmp_path, stdin="long-enough-pass1\n")
    assert role.returncode == 2 and "角色" in role.stderr
    unit = run(["createuser", "bob", "--role", "handler"], tmp_path, stdin="long-enough-pass1\n")
    assert unit.returncode == 2 and "--unit" in unit.stderr


def test_a_malformed_region_is_a_clear_configuration_error(tmp_path):
    r = run(["init"], tmp_path, env={"HOTLINE_REGION": "changsha"})
    assert r.returncode == 2
    assert "HOTLINE_REGION" in r.stderr


def test_init_loads_the_demo_city_districts_and_streets(tmp_path):
    import sqlite3

    assert run(["init"], tmp_path).returncode == 0
    db = sqlite3.connect(tmp_path / "hotline.sqlite3")
    kinds = dict(db.execute("select kind, count(*) from unit group by kind").fetchall())
    assert kinds["centre"] == 1
    # 长沙市 has 9 county-level divisions and over 150 streets and towns.
    assert kinds["territorial"] > 150
    assert db.execute("select count(*) from unit where name = '岳麓区人民政府'").fetchone()[0] == 1


def test_the_built_wheel_carries_migrations_templates_and_divisions(tmp_path):
    # Build from a copy: setuptools writes build/ and egg-info into the tree it builds.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "*.sqlite3*", "attachments"))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        pytest.fail(r.stdout + r.stderr)
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hotline/migrations/0001_initial.py" in names
    assert "hotline/templates/login.html" in names
    assert "hotline/data/divisions_43.csv" in names
    assert "routing/model/category.npz" in names
    # Installed on its own (no source tree on the path), it initialises a database.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {"PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}
    init = run(["init"], workdir, env=env)
    assert init.returncode == 0, init.stderr
    assert (workdir / "hotline.sqlite3").exists()


def test_routing_place_prints_the_county_and_street(tmp_path):
    r = run(["routing", "place", "岳麓区望月湖小区路灯不亮", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert '"county_code": "430104"' in r.stdout


def test_the_catalogue_is_exported_and_a_bad_file_is_refused_line_by_line(tmp_path):
    assert run(["init"], tmp_path).returncode == 0
    exported = run(["routing", "catalogue-export"], tmp_path)
    assert exported.returncode == 0 and "市交通运输局" in exported.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("position,lead\nx,不存在的单位\n", encoding="utf-8")
    r = run(["routing", "catalogue-import", str(bad)], tmp_path)
    assert r.returncode == 1 and "第 2 行" in r.stderr
    good = tmp_path / "good.csv"
    good.write_text(exported.stdout, encoding="utf-8")
    assert run(["routing", "catalogue-import", str(good)], tmp_path).returncode == 0
    assert run(["routing", "catalogue-export"], tmp_path).stdout == exported.stdout


DATA = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (DATA / "teddy2020" / "labelled_train.csv").is_file(), reason="needs HOTLINE_DATA_DIR (../shared/data) with teddy2020/")
def test_routing_eval_prints_the_figures_and_ends_with_one_json_line(tmp_path):
    import csv
    import json

    with open(DATA / "teddy2020" / "labelled_train.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[:60]
    sample = tmp_path / "sample.csv"  # outside the repository: message text never lands in it
    with open(sample, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["title", "text", "label", "extra"], extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({"title": "", "text": f"{r['title']} {r['text']}", "label": r["label"], "extra": "x"})
    r = run(["routing", "eval", "--data", str(sample), "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "macro-F1" in r.stdout and "latency" in r.stdout
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"accuracy", "macro_f1", "top3_accuracy", "per_class"} <= set(figures)


def test_routing_eval_refuses_a_file_without_the_label_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("title,text\n,路灯不亮\n", encoding="utf-8")
    r = run(["routing", "eval", "--data", str(bad)], tmp_path)
    assert r.returncode == 2 and "label" in r.stderr


def test_retrain_refuses_to_replace_the_model_without_enough_city_corrections(tmp_path):
    assert run(["init"], tmp_path).returncode == 0
    r = run(["routing", "retrain", "--data-dir", str(DATA)], tmp_path)
    assert r.returncode in (1, 2)
    assert "不替换" in r.stdout or "找不到训练数据" in r.stderr
