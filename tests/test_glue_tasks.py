"""GLUE task readers: every task in the Hub layout (.csv/.json/.jsonl) and in its original GLUE .tsv layout gives the
Hub's column names, label ids and ``idx``; GLUE-layout folders; clear errors on bad input."""

import csv
import json
from pathlib import Path

import pytest

from magic_bert.glue.tasks import ORIGINAL_FILES, PAPER_ORDER, TASKS, get_task, load_glue, read_glue_file

ALL_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")

# Hub-layout rows per task: (texts, label id / STS-B score). Bare and unbalanced double quotes on purpose.
ROWS = {
    "cola": [(("Our friends won't buy this analysis, let alone the next one we propose.",), 1),
             (('They drank the pub "dry.',), 0),
             (('"Yes," he said.',), 1)],
    "sst2": [(("hide new secretions from the parental units ",), 0),
             (("it 's a charming and often affecting journey . ",), 1),
             (('"a gorgeous , witty , seductive movie . ',), 1)],
    "mrpc": [(('Amrozi accused his brother , whom he called " the witness " , of distorting his evidence .',
               'Referring to him as only " the witness " , Amrozi accused his brother .'), 1),
              (("Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 billion .",
                '"Yucaipa bought Dominick\'s in 1995 for $ 693 million and sold it to Safeway for $ 1.8 billion .'), 0),
              (("They had published an advertisement on the Internet .",
                "On June 10 , the ship 's owners had published an advertisement ."), 1)],
    "stsb": [(("A plane is taking off.", "An air plane is taking off."), 5.0),
             (("A man is playing a large flute.", 'A man is playing a "flute.'), 3.8),
             (("A man is spreading cheese on a pizza.", "A panda is climbing."), 0.25)],
    "qqp": [(("What is the step by step guide to invest in share market in india?",
              "What is the step by step guide to invest in share market?"), 0),
            (('How can I be a good "geologist?', "What should I do to be a great geologist?"), 1),
            (("How do I read and find my YouTube comments?", "How can I see all my Youtube comments?"), 1)],
    "mnli": [(("The new rights are nice enough", "Everyone really likes the newest benefits "), 1),
             (('This site includes a "list of all award winners.', "The Government Executive articles are here."), 2),
             (("uh i don't know i i have mixed emotions", "I like him for the most part."), 0),
             (("yeah i i think my favorite restaurant", "My favorite restaurants are always far away."), 2)],
    "qnli": [(("When did the third Digimon series begin?", 'Unlike the two seasons before it, "Digimon Tamers'), 1),
             (("Which missile batteries often have individual launchers?", "Shorter range missiles are common."), 0),
             (("What two things does Popper argue Tarski's theory involves?", "Popper argued that it is both."), 0)],
    "rte": [(("Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer.",
              "Christopher Reeve had an accident."), 1),
            (('Yet, we now are discovering that "antibiotics are losing their effectiveness.',
              "Bacteria is winning the war against antibiotics."), 0),
            (("Cairo is now home to some 15 million people.", "15 million tonnes of rubbish are produced daily."), 1)],
}


def expected(task: str, idx=None, labels=True) -> dict:
    keys = TASKS[task].keys
    rows = ROWS[task]
    out = {key: [texts[k] for texts, _ in rows] for k, key in enumerate(keys)}
    out["label"] = [y for _, y in rows] if labels else [-1] * len(rows)
    out["idx"] = list(idx) if idx is not None else list(range(len(rows)))
    return out


def check(ds, task: str, want: dict) -> None:
    assert ds.column_names == [*TASKS[task].keys, "label", "idx"]
    assert ds.features["label"].dtype == ("float32" if task == "stsb" else "int64")
    assert ds.features["idx"].dtype == "int64"
    got = ds.to_dict()
    if task == "stsb":  # float32 scores
        assert got.pop("label") == pytest.approx(want["label"], abs=1e-6)
        want = {k: v for k, v in want.items() if k != "label"}
    assert got == want


# ---------------------------------------------------------------------------------------------------------- tasks


def test_task_table():
    assert set(TASKS) == set(ALL_TASKS) and set(PAPER_ORDER) == set(ALL_TASKS) and len(PAPER_ORDER) == 8
    assert PAPER_ORDER == ("mnli", "qqp", "qnli", "cola", "sst2", "stsb", "rte", "mrpc")
    assert {t: TASKS[t].num_labels for t in ALL_TASKS} == {"cola": 2, "sst2": 2, "mrpc": 2, "stsb": 1, "qqp": 2,
                                                            "mnli": 3, "qnli": 2, "rte": 2}
    assert [t for t in ALL_TASKS if TASKS[t].is_regression] == ["stsb"]
    assert TASKS["mnli"].labels == ("entailment", "neutral", "contradiction")
    assert TASKS["mnli"].dev_splits == ("validation_matched", "validation_mismatched")
    assert get_task("rte") is TASKS["rte"]


@pytest.mark.parametrize("name", ["wnli", "ax", "MRPC", "all", ""])
def test_unknown_task(name):
    with pytest.raises(ValueError, match=f"Unknown GLUE task {name!r}"):
        get_task(name)


# ------------------------------------------------------------------------------------------------------ Hub layout


def write_hub(path: Path, task: str, fmt: str, idx, label_names: bool = False) -> Path:
    keys = TASKS[task].keys
    records = []
    for (texts, label), i in zip(ROWS[task], idx, strict=True):
        if label_names:
            label = TASKS[task].labels[label]
        records.append({**dict(zip(keys, texts, strict=True)), "label": label, "idx": i})
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=[*keys, "label", "idx"])
            writer.writeheader()
            writer.writerows(records)
    elif fmt == "json":
        path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    else:  # JSON lines, as .jsonl or as .json (what `Dataset.to_json` writes)
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


FORMATS = {"csv": "csv", "json": "json", "json-lines": "json", "jsonl": "jsonl"}


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("task", ALL_TASKS)
def test_hub_layout(tmp_path, task, fmt):
    idx = [7, 3, 12, 40][: len(ROWS[task])]
    path = write_hub(tmp_path / f"train.{FORMATS[fmt]}", task, fmt, idx)
    check(read_glue_file(get_task(task), path), task, expected(task, idx))


@pytest.mark.parametrize("task", ["cola", "mrpc", "mnli", "qnli", "rte"])
def test_hub_layout_label_names(tmp_path, task):
    path = write_hub(tmp_path / "dev.csv", task, "csv", range(len(ROWS[task])), label_names=True)
    check(read_glue_file(get_task(task), path), task, expected(task))


def test_hub_layout_without_idx_numbers_rows(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("sentence1,sentence2,label\n" + "".join(f"a {i},b {i},{i % 2}\n" for i in range(4)))
    ds = read_glue_file(get_task("rte"), path)
    assert ds.to_dict() == {"sentence1": ["a 0", "a 1", "a 2", "a 3"], "sentence2": ["b 0", "b 1", "b 2", "b 3"],
                            "label": [0, 1, 0, 1], "idx": [0, 1, 2, 3]}


def test_hub_csv_with_bom(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("\ufeffsentence,label,idx\ngood,1,0\nbad,0,1\n", encoding="utf-8")
    assert read_glue_file(get_task("sst2"), path).to_dict() == {"sentence": ["good", "bad"], "label": [1, 0],
                                                                "idx": [0, 1]}


def test_hub_test_file_with_null_labels(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text('{"sentence1": "a", "sentence2": "b", "label": null, "idx": 0}\n'
                    '{"sentence1": "c", "sentence2": "d", "idx": 1}\n')
    assert read_glue_file(get_task("rte"), path, require_labels=False)["label"] == [-1, -1]
    csv_path = tmp_path / "test.csv"
    csv_path.write_text("sentence1,sentence2,label,idx\na,b,-1,0\nc,d,,1\n")
    assert read_glue_file(get_task("mrpc"), csv_path, require_labels=False)["label"] == [-1, -1]


def test_hub_json_test_file_with_minus_one_labels(tmp_path):
    # The layout of a Hub test split saved with Dataset.to_json (written here by hand, nothing loaded): label -1.
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps({"sentence1": f"a{i}", "sentence2": f"b{i}", "label": -1, "idx": i}) + "\n"
                            for i in range(3)))
    ds = read_glue_file(get_task("rte"), path, require_labels=False)
    assert ds["label"] == [-1, -1, -1] and ds["idx"] == [0, 1, 2]


# -------------------------------------------------------------------------------------------- original .tsv layouts


def original_tsv(task: str, labelled: bool = True, ids=None) -> str:
    """The task's rows (`ROWS`) written in the original GLUE .tsv layout (train/dev; test without labels)."""
    t = TASKS[task]
    rows = ROWS[task]
    ids = list(ids) if ids is not None else list(range(len(rows)))
    lines = []
    if task == "cola":
        if labelled:  # no header: source, label, original mark (empty when acceptable), sentence
            lines = [f"gj04\t{y}\t{'' if y else '*'}\t{s}" for (s,), y in rows]
        else:
            lines = ["index\tsentence", *(f"{i}\t{s}" for i, ((s,), _) in zip(ids, rows, strict=True))]
    elif task == "sst2":
        lines = ["sentence\tlabel", *(f"{s}\t{y}" for (s,), y in rows)] if labelled else \
            ["index\tsentence", *(f"{i}\t{s}" for i, ((s,), _) in zip(ids, rows, strict=True))]
    elif task == "mrpc":
        head = "Quality" if labelled else "index"
        lines = [f"\ufeff{head}\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i, ((a, b), y) in zip(ids, rows, strict=True):
            lines.append(f"{y if labelled else i}\t{1000 + i}\t{2000 + i}\t{a}\t{b}")
    elif task == "stsb":
        header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
        lines = [header + ("\tscore" if labelled else "")]
        for i, ((a, b), y) in zip(ids, rows, strict=True):
            lines.append(f"{i}\tmain-captions\tMSRvid\t2012test\t{i + 1:04d}\tnone\tnone\t{a}\t{b}"
                         + (f"\t{y:.3f}" if labelled else ""))
    elif task == "qqp":
        if labelled:
            lines = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                     *(f"{i}\t{2 * i + 1}\t{2 * i + 2}\t{a}\t{b}\t{y}"
                       for i, ((a, b), y) in zip(ids, rows, strict=True))]
        else:
            lines = ["id\tquestion1\tquestion2", *(f"{i}\t{a}\t{b}" for i, ((a, b), _) in zip(ids, rows, strict=True))]
    elif task == "mnli":
        header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
                  "sentence2_parse\tsentence1\tsentence2")
        lines = [header + ("\tlabel1\tgold_label" if labelled else "")]
        for i, ((a, b), y) in zip(ids, rows, strict=True):
            name = t.labels[y]
            lines.append(f"{i}\t{31193 + i}\t{31193 + i}n\tgovernment\t( ( The new ) rights )\t( Everyone likes )\t"
                         f"(ROOT (S (NP (DT The))))\t(ROOT (S (NP (NN Everyone))))\t{a}\t{b}"
                         + (f"\t{name}\t{name}" if labelled else ""))
    else:  # qnli, rte: index, the two texts, label names
        lines = ["\t".join(["index", *t.tsv_keys, *(["label"] if labelled else [])])]
        for i, ((a, b), y) in zip(ids, rows, strict=True):
            lines.append(f"{i}\t{a}\t{b}" + (f"\t{t.labels[y]}" if labelled else ""))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("task", ALL_TASKS)
def test_original_tsv_layout(tmp_path, task):
    path = tmp_path / "train.tsv"
    path.write_text(original_tsv(task), encoding="utf-8")
    check(read_glue_file(get_task(task), path), task, expected(task))


@pytest.mark.parametrize("task", ALL_TASKS)
def test_original_tsv_test_file_has_no_labels(tmp_path, task):
    path = tmp_path / "test.tsv"
    path.write_text(original_tsv(task, labelled=False, ids=[0, 1, 2, 3][: len(ROWS[task])]), encoding="utf-8")
    check(read_glue_file(get_task(task), path, require_labels=False), task, expected(task, labels=False))
    with pytest.raises(ValueError, match="has no label column"):
        read_glue_file(get_task(task), path)


def test_mrpc_bom_and_bare_quotes_exactly(tmp_path):
    text = ('\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n'
            '1\t702876\t702977\tHe called " the witness " a liar .\tReferring to " the witness " , he said so .\r\n'
            '0\t2108705\t2108831\t"Yucaipa owned Dominick \'s .\tYucaipa bought it in 1995 .\r\n'
            '1\t1330381\t1330521\tThey "had" published it .\tOn June 10 , they had published it ."\r\n')
    path = tmp_path / "dev.tsv"
    path.write_bytes(text.encode("utf-8"))
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    ds = read_glue_file(get_task("mrpc"), path)
    assert ds.to_dict() == {
        "sentence1": ['He called " the witness " a liar .', '"Yucaipa owned Dominick \'s .',
                      'They "had" published it .'],
        "sentence2": ['Referring to " the witness " , he said so .', "Yucaipa bought it in 1995 .",
                      'On June 10 , they had published it ."'],
        "label": [1, 0, 1], "idx": [0, 1, 2]}


def test_cola_headerless_with_empty_and_star_marks(tmp_path):
    path = tmp_path / "in_domain_dev.tsv"
    path.write_text("gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"
                    "gj04\t0\t*\tThe more we study verbs, the crazier they get get.\n"
                    "cj99\t0\t??\tDay by day the facts are getting murkier.\n"
                    "\n"
                    'cj99\t1\t\t"Bill," she said.\n')
    ds = read_glue_file(get_task("cola"), path)
    assert ds.to_dict() == {"sentence": ["The sailors rode the breeze clear of the rocks.",
                                         "The more we study verbs, the crazier they get get.",
                                         "Day by day the facts are getting murkier.", '"Bill," she said.'],
                            "label": [1, 0, 0, 1], "idx": [0, 1, 2, 3]}


def test_mnli_real_dev_header_with_five_annotator_labels(tmp_path):
    header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
              "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
    rows = [("0", "p a", "h a", "neutral\tentailment\tneutral\tneutral\tneutral", "neutral"),
            ("1", "p b", "h b", "contradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction",
             "contradiction"),
            ("2", "p c", "h c", "entailment\tentailment\tentailment\tneutral\tentailment", "entailment")]
    path = tmp_path / "dev_mismatched.tsv"
    path.write_text(header + "\n" + "".join(f"{i}\t1\t1n\tletters\t(a)\t(b)\t(A)\t(B)\t{p}\t{h}\t{ls}\t{g}\n"
                                            for i, p, h, ls, g in rows))
    ds = read_glue_file(get_task("mnli"), path)
    assert ds.to_dict() == {"premise": ["p a", "p b", "p c"], "hypothesis": ["h a", "h b", "h c"],
                            "label": [1, 2, 0], "idx": [0, 1, 2]}


def test_index_column_gives_idx(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\n"
                    "5\ta\tb\tentailment\n9\tc\td\tnot_entailment\n")
    assert read_glue_file(get_task("rte"), path).to_dict() == {"sentence1": ["a", "c"], "sentence2": ["b", "d"],
                                                               "label": [0, 1], "idx": [5, 9]}


def test_qqp_idx_is_the_row_number_not_the_pair_id(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                    "201359\t303345\t303346\tWhy are they so beautiful?\tWhy are we so beautiful?\t0\n"
                    "263843\t69383\t380476\tI want to pursue PhD in Computer Science?\tHow can I do a PhD in CS?\t1\n")
    assert read_glue_file(get_task("qqp"), path)["idx"] == [0, 1]


def test_hub_layout_tsv_keeps_idx(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("sentence1\tsentence2\tlabel\tidx\na\tb\t1\t7\nc\td\t0\t3\n")
    ds = read_glue_file(get_task("rte"), path)
    assert ds.to_dict() == {"sentence1": ["a", "c"], "sentence2": ["b", "d"], "label": [1, 0], "idx": [7, 3]}


# ------------------------------------------------------------------------------------------------------- load_glue


def write_glue_folder(root: Path, task: str, test: bool = True, dev: bool = True) -> Path:
    t = TASKS[task]
    folder = root / t.folder
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text(original_tsv(task), encoding="utf-8")
    if dev:
        for split in t.dev_splits:
            (folder / ORIGINAL_FILES[split]).write_text(original_tsv(task), encoding="utf-8")
    if test:
        for split in t.test_splits:
            (folder / ORIGINAL_FILES[split]).write_text(original_tsv(task, labelled=False, ids=[0, 1, 2, 3][
                : len(ROWS[task])]), encoding="utf-8")
    return root


@pytest.mark.parametrize("task", ALL_TASKS)
def test_load_glue_from_original_folder(tmp_path, task):
    t = get_task(task)
    data = load_glue(t, data_dir=write_glue_folder(tmp_path, task))
    dev = ["validation_matched", "validation_mismatched"] if task == "mnli" else ["validation"]
    test = ["test_matched", "test_mismatched"] if task == "mnli" else ["test"]
    assert list(data) == ["train", *dev, *test]
    for split in ["train", *dev]:
        check(data[split], task, expected(task))
    for split in test:
        check(data[split], task, expected(task, labels=False))


def test_load_glue_folder_without_test_file(tmp_path):
    data = load_glue(get_task("mrpc"), data_dir=str(write_glue_folder(tmp_path, "mrpc", test=False)))
    assert list(data) == ["train", "validation"]
    check(data["validation"], "mrpc", expected("mrpc"))


def test_load_glue_mnli_matched_and_mismatched_are_their_own_files(tmp_path):
    root = write_glue_folder(tmp_path, "mnli", test=False)
    (root / "MNLI" / "dev_mismatched.tsv").write_text(
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
        "0\t1\t1n\tletters\t(a)\t(b)\t(A)\t(B)\tmismatched premise\tmismatched hypothesis\tneutral\tneutral\n")
    data = load_glue(get_task("mnli"), data_dir=root)
    assert list(data) == ["train", "validation_matched", "validation_mismatched"]
    check(data["validation_matched"], "mnli", expected("mnli"))
    assert data["validation_mismatched"].to_dict() == {"premise": ["mismatched premise"],
                                                       "hypothesis": ["mismatched hypothesis"], "label": [1],
                                                       "idx": [0]}


def test_load_glue_from_hub_layout_files(tmp_path):
    idx = [0, 1, 2, 3]
    train = write_hub(tmp_path / "train.jsonl", "mnli", "jsonl", idx)
    matched = write_hub(tmp_path / "m.csv", "mnli", "csv", idx, label_names=True)
    mismatched = write_hub(tmp_path / "mm.json", "mnli", "json", idx)
    test = tmp_path / "test_m.csv"
    test.write_text("premise,hypothesis,idx\np,h,0\n")
    data = load_glue(get_task("mnli"), str(train), [str(matched), str(mismatched)], [str(test)])
    assert list(data) == ["train", "validation_matched", "validation_mismatched", "test_matched"]
    for split in ("train", "validation_matched", "validation_mismatched"):
        check(data[split], "mnli", expected("mnli", idx))
    assert data["test_matched"].to_dict() == {"premise": ["p"], "hypothesis": ["h"], "label": [-1], "idx": [0]}


# ---------------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("task, text, bad", [
    ("rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tmaybe\n", "'maybe'"),
    ("qnli", "index\tquestion\tsentence\tlabel\n0\ta\tb\tneutral\n", "'neutral'"),
    ("mnli", "index\tsentence1\tsentence2\tgold_label\n0\ta\tb\tcontradictory\n", "'contradictory'"),
    ("mrpc", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta\tb\n3\t3\t4\tc\td\n", "'3'"),
    ("sst2", "sentence\tlabel\ngood\t1\nbad\t0.5\n", "'0.5'"),
    ("cola", "gj04\t1\t\tFine.\ngj04\t2\t*\tBad.\n", "'2'"),
])
def test_label_outside_the_label_set(tmp_path, task, text, bad):
    path = tmp_path / "train.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"label {bad} is outside {task}'s label set"):
        read_glue_file(get_task(task), path)


def test_label_outside_the_label_set_hub_json(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"sentence1": "a", "sentence2": "b", "label": 1}\n'
                    '{"sentence1": "c", "sentence2": "d", "label": 3}\n')
    with pytest.raises(ValueError, match=r"row 2: label 3 is outside mrpc's label set \['not_equivalent', 'equiv"):
        read_glue_file(get_task("mrpc"), path)


def test_stsb_score_must_be_a_number(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("sentence1,sentence2,label\na,b,4.2\nc,d,high\n")
    with pytest.raises(ValueError, match="STS-B scores are numbers, got 'high'"):
        read_glue_file(get_task("stsb"), path)


def test_missing_text_columns_lists_the_columns_found(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text_a,text_b,label\na,b,1\n")
    with pytest.raises(ValueError, match=r"has columns \['label', 'text_a', 'text_b'\]; it needs the text columns "
                                         r"\['sentence1', 'sentence2'\]"):
        read_glue_file(get_task("mrpc"), path)
    tsv = tmp_path / "train.tsv"
    tsv.write_text("index\tpremise_text\thypothesis_text\tgold_label\n0\ta\tb\tneutral\n")
    with pytest.raises(ValueError, match=r"has columns \['idx', 'label'\]; .*\['sentence1', 'sentence2'\] \(original"):
        read_glue_file(get_task("mnli"), tsv)


@pytest.mark.parametrize("name, text", [
    ("train.csv", "sentence1,sentence2,idx\na,b,0\n"),
    ("train.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n"),
])
def test_train_file_without_labels(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match="rte: .* has no label column"):
        read_glue_file(get_task("rte"), path)
    with pytest.raises(ValueError, match="has no label column"):
        load_glue(get_task("rte"), str(path), [str(path)])
    assert read_glue_file(get_task("rte"), path, require_labels=False)["label"] == [-1]


def test_dev_file_with_a_missing_label(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\t\n")
    with pytest.raises(ValueError, match="rows without a label"):
        read_glue_file(get_task("rte"), path)


def test_row_with_the_wrong_number_of_fields(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\textra\tentailment\n")
    with pytest.raises(ValueError, match="line 3 has 5 fields, the header 4"):
        read_glue_file(get_task("rte"), path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"rte: data file '.*nope\.tsv' does not exist"):
        read_glue_file(get_task("rte"), tmp_path / "nope.tsv")
    with pytest.raises(ValueError, match="does not exist"):
        load_glue(get_task("rte"), str(tmp_path / "nope.csv"), [str(tmp_path / "nope.csv")])


@pytest.mark.parametrize("name, text", [("train.tsv", ""), ("train.tsv", "\n\n"), ("train.csv", "sentence,label\n"),
                                        ("train.jsonl", "\n"), ("train.json", "[]")])
def test_empty_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=r"sst2: data file '.*' is empty"):
        read_glue_file(get_task("sst2"), path)


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("sentence\tlabel\na\t1\n")
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        read_glue_file(get_task("sst2"), path)


def test_missing_dev_split(tmp_path):
    train = write_hub(tmp_path / "train.csv", "mnli", "csv", range(4))
    with pytest.raises(ValueError, match=r"mnli: no data for the \['validation_matched', 'validation_mismatched'\]"):
        load_glue(get_task("mnli"), str(train))
    with pytest.raises(ValueError, match=r"no data for the \['validation_mismatched'\] split"):
        load_glue(get_task("mnli"), str(train), [str(train)])
    rte = write_hub(tmp_path / "rte.csv", "rte", "csv", range(3))
    with pytest.raises(ValueError, match=r"rte: no data for the \['validation'\] split"):
        load_glue(get_task("rte"), str(rte))


def test_missing_dev_file_in_folder(tmp_path):
    root = write_glue_folder(tmp_path, "qnli", dev=False)
    with pytest.raises(ValueError, match=r"qnli: no data for the \['validation'\] split"):
        load_glue(get_task("qnli"), data_dir=root)
    (root / "QNLI" / "train.tsv").unlink()
    with pytest.raises(ValueError, match=r"no data for the \['train', 'validation'\] split"):
        load_glue(get_task("qnli"), data_dir=root)


def test_folder_without_the_task(tmp_path):
    write_glue_folder(tmp_path, "rte")
    with pytest.raises(ValueError, match="mrpc: `data_dir` .* has no MRPC/ folder"):
        load_glue(get_task("mrpc"), data_dir=tmp_path)
