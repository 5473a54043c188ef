"""`H` as the JVM computes it: hudson.scheduler.Hash.from's MD5 fold fed to the real java.util.Random
(Java 17, single-file source launch), against legion_ci.core.cron for job names like ours; and
`legion-ci schedule` printing the next five run times."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from legion_ci.cli import main
from legion_ci.core import cron

ROOT = Path(__file__).resolve().parents[2]

# Hash.from(seed), as in core/src/main/java/hudson/scheduler/Hash.java, then nextInt for each bound.
JAVA = """
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Random;

public class HashProbe {
    public static void main(String[] args) throws Exception {
        int[] bounds = {60, 24, 28, 12, 7, 15, 4, 3, 64, 1};
        for (String seed : args) {
            MessageDigest md5 = MessageDigest.getInstance("MD5");
            md5.update(seed.getBytes(StandardCharsets.UTF_8));
            byte[] digest = md5.digest();
            for (int i = 8; i < digest.length; i++) digest[i % 8] ^= digest[i];
            long l = 0;
            for (int i = 0; i < 8; i++) l = (l << 8) + (digest[i] & 0xFF);
            Random rnd = new Random(l);
            StringBuilder out = new StringBuilder(seed);
            for (int b : bounds) out.append(' ').append(rnd.nextInt(b));
            System.out.println(out);
        }
    }
}
"""
SEEDS = [
    "iris/iris-retrain",
    "diabetes/diabetes-retrain",
    "k8s-model/k8s-model-retrain",
    "stuff",
    "junk",
    "",
    "ünïcødé/mödel-retrain",
    "a" * 200,
]
BOUNDS = [60, 24, 28, 12, 7, 15, 4, 3, 64, 1]


def test_h_values_equal_the_jvm(tmp_path: Path) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.fail("java is not installed (Java 17 is expected on this machine)")
    source = tmp_path / "HashProbe.java"
    source.write_text(JAVA, encoding="utf-8")
    proc = subprocess.run(
        [java, str(source), *SEEDS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"PATH": "/usr/bin:/bin", "JAVA_TOOL_OPTIONS": "-Dfile.encoding=UTF-8", "LANG": "C.UTF-8"},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln]
    assert len(lines) == len(SEEDS)
    for seed, line in zip(SEEDS, lines, strict=True):
        jvm = [int(x) for x in line[len(seed) :].split()]
        rnd = cron.jenkins_hash(seed)
        assert [rnd.next(b) for b in BOUNDS] == jvm, seed


def test_schedule_prints_the_next_five_runs(capsys: pytest.CaptureFixture[str]) -> None:
    model = ROOT / "tests" / "fixtures" / "jenkins-basic" / "input"
    assert main(["schedule", str(model), "--after", "2025-01-03T12:00"]) == 0  # a Friday, UTC
    out = capsys.readouterr().out
    assert "H is hashed from the job's full name 'basic/basic-retrain'" in out
    tabs = cron.parse("H H(0-5) * * 1-5", "basic/basic-retrain")
    expected = tabs.next_times(datetime(2025, 1, 3, 12, 0), 5)
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  ")]
    assert lines == [t.strftime("%a %Y-%m-%d %H:%M UTC") for t in expected]
    assert [t.weekday() for t in expected] == [0, 1, 2, 3, 4], "weekdays only, starting Monday"
    assert len({(t.hour, t.minute) for t in expected}) == 1 and expected[0].hour <= 5


def test_schedule_errors(capsys: pytest.CaptureFixture[str]) -> None:
    model = ROOT / "tests" / "fixtures" / "jenkins-no-schedule" / "input"
    assert main(["schedule", str(model)]) == 2
    assert "schedule.retrain is not set" in capsys.readouterr().err
    basic = ROOT / "tests" / "fixtures" / "jenkins-basic" / "input"
    assert main(["schedule", str(basic), "--tz", "Mars/Base"]) == 2
    assert "--tz 'Mars/Base' is not a time zone" in capsys.readouterr().err
