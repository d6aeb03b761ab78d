import re
from html.parser import HTMLParser

from unet4mri import report


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.text = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_data(self, data):
        self.text.append(data)


def test_report_has_every_section_and_embedded_pictures(tiny_run, tmp_path):
    config, _ = tiny_run
    path = report.build_report(config.output_dir, str(tmp_path / "report.html"))
    parser = _Collector()
    with open(path) as page:
        parser.feed(page.read())
    assert set(report.SECTIONS) <= parser.ids
    assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert len(parser.images) >= 3  # curves, bucket chart, at least one gallery overlay
    text = " ".join(parser.text)
    for expected in ("FileBasedExampleGen", "Positive-pixel weight", "dice_per_patient_mean", "blessed", "Anomalies"):
        assert expected in text
    # The gate of the testing configuration, and the comparison with the served model: absent on a
    # first run, present once the session's other tests have rerun the pipeline.
    assert "dice_per_tumor_slice_mean ≥ 0.0 (overall)" in text
    assert re.search(r"no comparison: no model was served yet|at most 0 below the served model \(overall", text)
