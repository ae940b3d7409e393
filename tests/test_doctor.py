"""course_lib.doctor: passes on a good install and names what is wrong on a broken one."""

import json
import shutil

from course_lib import doctor


def test_doctor_passes_here(capsys):
    assert doctor.run() == 0
    out = capsys.readouterr().out
    assert "tiny-gpt: sha256 matches" in out and "0 to fix" in out


def test_corrupted_weights_are_named(tmp_path):
    for f in doctor.WEIGHTS.glob("tiny-gpt*"):
        shutil.copy(f, tmp_path / f.name)
    data = bytearray((tmp_path / "tiny-gpt.safetensors").read_bytes())
    data[-1] ^= 1                                     # one flipped bit
    (tmp_path / "tiny-gpt.safetensors").write_bytes(bytes(data))
    marks = {what.split(":")[0]: mark for mark, what, _ in doctor.check_weights(tmp_path)}
    assert marks["tiny-gpt"] == "✗"
    (tmp_path / "tiny-gpt.safetensors").unlink()
    (mark, what, fix), = doctor.check_weights(tmp_path)
    assert mark == "✗" and "missing" in what and "regenerate" in fix


def test_unreadable_record_and_empty_folder(tmp_path):
    assert doctor.check_weights(tmp_path)[0][0] == "✗"
    (tmp_path / "x.json").write_text("{not json")
    assert doctor.check_weights(tmp_path)[0][0] == "✗"


def test_version_drift_and_missing_package(tmp_path, monkeypatch):
    pins = tmp_path / "constraints.txt"
    pins.write_text("numpy==0.0.1\n# a comment\ntorch==2.13.0\n")
    by_name = {what.split()[0]: mark for mark, what, _ in doctor.check_packages(pins)}
    assert by_name["numpy"] == "!" and by_name["torch"] == "✓"
    monkeypatch.setattr(doctor, "KEY_PACKAGES", ("surely-not-installed-pkg",))
    (mark, what, fix), = doctor.check_packages(pins)
    assert mark == "✗" and "not installed" in what and "install" in fix
    json.dumps(doctor.check_machine())   # plain data, printable


def test_reproducibility_names_the_machine_and_the_records(tmp_path):
    from course_lib.checkpoint import this_machine

    here = this_machine()
    (tmp_path / "mine.json").write_text(json.dumps({"sha256": "x", **here}))
    (tmp_path / "theirs.json").write_text(json.dumps({**here, "cpu_capability": "SVE256"}))
    (tmp_path / "old.json").write_text(json.dumps({"torch_version": here["torch_version"]}))
    (tmp_path / "old.tokenizer.json").write_text("{}")          # not a record
    rows = doctor.check_reproducibility(tmp_path)
    text = "\n".join(what for _, what, _ in rows)
    assert here["cpu_model"] in rows[0][1] and here["cpu_capability"] in rows[0][1]
    assert "bit for bit here: mine" in text
    assert "theirs (bit for bit on" in text and "SVE256" in text
    assert "old (made before records named their machine)" in text
    assert "tokenizer" not in text
    assert all(mark == "✓" for mark, _, _ in rows)
