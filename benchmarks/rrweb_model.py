"""A stated model of a customer's rrweb stream, until a real recording replaces it.

- The first batch (and any batch answering a later `snapshot-request`): a Meta event (type 4)
  and a FullSnapshot (type 2) of a shop page: head with ~12 KB of inlined CSS, a nav, a grid of
  product cards (image, title, price, button), paragraphs of text and a checkout form, nested
  up to ~10 deep, grown to ~150 KB of JSON.
- Then one incremental batch per 1/rate seconds (rrweb's recorder flushes every ~200 ms at
  5 batches/s), its target size drawn from a triangular distribution over 1-6 KB (mode 2 KB,
  mean ~3 KB), filled with IncrementalSnapshot (type 3) events drawn with these weights:
  mouse moves (source 1, 3-10 positions) 40 %, mutations (source 0: texts, attributes, a
  small added subtree, removes) 30 %, scrolls (source 3) 10 %, inputs (source 5) 10 %,
  mouse interactions (source 2) 10 %.
- Every batch starts with a Custom event (type 5) `{"tag": "bench", "payload": {"t": <send
  time, time.time()>}}`: the agent's side reads the delivery latency from it.

Batches are made once (seeded), as bytes with the cseq and the send time left to fill in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

SNAPSHOT_BYTES = 150_000
BATCH_MIN, BATCH_MODE, BATCH_MAX = 1_000, 2_000, 6_000
TEMPLATES = 200
HREF = "https://shop.example.com/checkout?step=2"
WORDS = (  # noqa: SIM905 - a sentence reads better than a column of words
    "order shipping total basket delivery address card secure payment product size colour "
    "quantity discount voucher summary account billing postcode country express standard "
    "return policy warranty reviews rating stock available today tomorrow free"
).split()
EVENT_WEIGHTS = {"move": 40, "mutation": 30, "scroll": 10, "input": 10, "click": 10}
MODEL = (
    f"rrweb model: first batch Meta + FullSnapshot ~{SNAPSHOT_BYTES // 1000} KB; then incremental "
    f"batches {BATCH_MIN // 1000}-{BATCH_MAX // 1000} KB (triangular, mode "
    f"{BATCH_MODE // 1000} KB) of mouse-move 40% / mutation 30% / scroll 10% / input 10% / "
    "click 10%, each stamped by a Custom event"
)


@dataclass(frozen=True)
class Batches:
    """A customer's batches: the full snapshot and the incremental ones, as frame templates."""

    snapshot: bytes  # the events after the stamp, comma-separated, no brackets
    incremental: list[bytes]
    node_count: int  # nodes in the full snapshot

    def frame(self, cseq: int, sent: float, index: int | None) -> bytes:
        """Return an `events` frame: the incremental batch `index`, or the full snapshot."""
        body = self.snapshot if index is None else self.incremental[index % len(self.incremental)]
        return b'{"type":"events","cseq":%d,"data":[%s,%s]}' % (cseq, stamp(sent), body)

    @property
    def mean_incremental(self) -> float:
        return sum(len(b) for b in self.incremental) / len(self.incremental)


def stamp(sent: float) -> bytes:
    return b'{"type":5,"data":{"tag":"bench","payload":{"t":%.6f}},"timestamp":%d}' % (
        sent,
        int(sent * 1000),
    )


class _Page:
    """Builds a serialized DOM (rrweb's serializedNodeWithId) and remembers its ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.next_id = 1
        self.element_ids: list[int] = []
        self.text_ids: list[int] = []
        self.input_ids: list[int] = []

    def new_id(self) -> int:
        node_id = self.next_id
        self.next_id += 1
        return node_id

    def words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    def text(self, content: str) -> dict[str, object]:
        node_id = self.new_id()
        self.text_ids.append(node_id)
        return {"type": 3, "textContent": content, "id": node_id}

    def element(
        self, tag: str, attributes: dict[str, str] | None = None, children: list | None = None
    ) -> dict[str, object]:
        node_id = self.new_id()
        self.element_ids.append(node_id)
        if tag == "input":
            self.input_ids.append(node_id)
        return {
            "type": 2,
            "tagName": tag,
            "attributes": attributes or {},
            "childNodes": children or [],
            "id": node_id,
        }

    def card(self, index: int) -> dict[str, object]:
        return self.element(
            "div",
            {"class": f"card card--product col-{index % 4}", "data-sku": f"SKU-{index:05d}"},
            [
                self.element(
                    "a",
                    {"href": f"/p/{index}", "class": "card__link"},
                    [
                        self.element(
                            "img",
                            {
                                "src": f"https://cdn.example.com/img/{index}.webp",
                                "alt": self.words(2, 5),
                                "loading": "lazy",
                                "width": "320",
                                "height": "240",
                            },
                        ),
                        self.element("h3", {"class": "card__title"}, [self.text(self.words(2, 6))]),
                    ],
                ),
                self.element(
                    "div",
                    {"class": "card__meta"},
                    [
                        self.element(
                            "span", {"class": "price"}, [self.text(f"£{index % 90 + 9}.99")]
                        ),
                        self.element("span", {"class": "rating"}, [self.text("★★★★☆")]),
                    ],
                ),
                self.element(
                    "button",
                    {"type": "button", "class": "btn btn--primary", "aria-label": "Add to basket"},
                    [self.text("Add to basket")],
                ),
            ],
        )

    def section(self, depth: int) -> dict[str, object]:
        """A nested block: paragraphs, lists and, deeper down, more blocks."""
        children: list[dict[str, object]] = [
            self.element("h2", {"class": "section__title"}, [self.text(self.words(2, 5))]),
            self.element("p", {"class": "lead"}, [self.text(self.words(15, 40))]),
            self.element(
                "ul",
                {"class": "list"},
                [
                    self.element("li", {}, [self.text(self.words(3, 8))])
                    for _ in range(self.rng.randint(2, 6))
                ],
            ),
        ]
        if depth > 0:
            children.append(self.section(depth - 1))
        return self.element("section", {"class": f"section depth-{depth}"}, children)

    def form(self) -> dict[str, object]:
        fields = []
        for name in ("name", "email", "street", "city", "postcode", "phone", "card", "expiry"):
            fields.append(
                self.element(
                    "label",
                    {"class": "field"},
                    [
                        self.text(name.title()),
                        self.element(
                            "input",
                            {"name": name, "type": "text", "autocomplete": name, "value": ""},
                        ),
                    ],
                )
            )
        return self.element("form", {"class": "checkout", "method": "post"}, fields)


def _css(rng: random.Random, size: int) -> str:
    rules = []
    total = 0
    while total < size:
        rule = (
            f".c{rng.randrange(10**6)} .x{rng.randrange(999)}{{margin:{rng.randint(0, 32)}px "
            f"{rng.randint(0, 32)}px;color:#{rng.randrange(16**6):06x};display:flex}}"
        )
        rules.append(rule)
        total += len(rule)
    return "".join(rules)


def full_snapshot(rng: random.Random, target: int = SNAPSHOT_BYTES) -> tuple[list, _Page]:
    """Return [Meta, FullSnapshot] events of about `target` bytes, and the page's ids."""
    page = _Page(rng)
    document_id = page.new_id()
    doctype = {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": page.new_id()}
    head = page.element(
        "head",
        {},
        [
            page.element("meta", {"charset": "utf-8"}),
            page.element("title", {}, [page.text("Checkout - Example Shop")]),
            page.element("style", {"_cssText": _css(rng, 12_000)}),
            page.element("link", {"rel": "icon", "href": "/favicon.ico"}),
        ],
    )
    main: list[dict[str, object]] = [page.form()]
    body = page.element(
        "body",
        {"class": "page page--checkout"},
        [
            page.element(
                "nav",
                {"class": "nav"},
                [page.element("ul", {}, [page.element("li", {}, [page.text(w)]) for w in WORDS])],
            ),
            page.element("main", {"id": "main"}, main),
            page.element("footer", {}, [page.text(page.words(20, 40))]),
        ],
    )
    html = page.element("html", {"lang": "en"}, [head, body])
    document = {"type": 0, "childNodes": [doctype, html], "id": document_id}
    events = [
        {"type": 4, "data": {"href": HREF, "width": 1440, "height": 900}, "timestamp": 0},
        {
            "type": 2,
            "data": {"node": document, "initialOffset": {"left": 0, "top": 0}},
            "timestamp": 0,
        },
    ]
    index = 0
    while len(orjson.dumps(events)) < target:
        grid = page.element(
            "div", {"class": "grid"}, [page.card(index + i) for i in range(6)] + [page.section(6)]
        )
        main.append(grid)
        index += 6
    return events, page


def _incremental(rng: random.Random, page: _Page, kind: str, at: int) -> dict[str, object]:
    if kind == "move":
        data: dict[str, object] = {
            "source": 1,
            "positions": [
                {
                    "x": rng.randint(0, 1440),
                    "y": rng.randint(0, 900),
                    "id": rng.choice(page.element_ids),
                    "timeOffset": -rng.randint(0, 200),
                }
                for _ in range(rng.randint(3, 10))
            ],
        }
    elif kind == "mutation":
        parent = rng.choice(page.element_ids)
        added = page.element(
            "li",
            {"class": f"item item--{rng.randint(0, 9)}", "data-key": str(rng.randrange(10**6))},
            [page.element("span", {"class": "label"}, [page.text(page.words(2, 8))])],
        )
        data = {
            "source": 0,
            "texts": [
                {"id": rng.choice(page.text_ids), "value": page.words(1, 6)}
                for _ in range(rng.randint(0, 3))
            ],
            "attributes": [
                {
                    "id": rng.choice(page.element_ids),
                    "attributes": {"class": f"is-{rng.choice(WORDS)}", "aria-hidden": "false"},
                }
                for _ in range(rng.randint(1, 4))
            ],
            "removes": [
                {"parentId": parent, "id": rng.choice(page.element_ids)}
                for _ in range(rng.randint(0, 2))
            ],
            "adds": [{"parentId": parent, "nextId": None, "node": added}],
        }
    elif kind == "scroll":
        data = {"source": 3, "id": 1, "x": 0, "y": rng.randint(0, 6000)}
    elif kind == "input":
        data = {
            "source": 5,
            "text": page.words(1, 3),
            "isChecked": False,
            "id": rng.choice(page.input_ids),
        }
    else:
        data = {
            "source": 2,
            "type": rng.choice((0, 1, 2, 5, 6)),
            "id": rng.choice(page.element_ids),
            "x": rng.randint(0, 1440),
            "y": rng.randint(0, 900),
        }
    return {"type": 3, "data": data, "timestamp": at}


def make_batches(seed: int = 7, templates: int = TEMPLATES) -> Batches:
    """Return the model's batches (the same seed, the same bytes)."""
    rng = random.Random(seed)
    snapshot, page = full_snapshot(rng)
    kinds = list(EVENT_WEIGHTS)
    weights = list(EVENT_WEIGHTS.values())
    incremental = []
    at = 1_700_000_000_000
    for _ in range(templates):
        target = rng.triangular(BATCH_MIN, BATCH_MAX, BATCH_MODE)
        events: list[dict[str, object]] = []
        size = len(stamp(0.0)) + 2
        while size < target:
            at += rng.randint(5, 40)
            event = _incremental(rng, page, rng.choices(kinds, weights)[0], at)
            encoded = orjson.dumps(event)
            if size + len(encoded) + 1 > BATCH_MAX and events:
                break
            events.append(event)
            size += len(encoded) + 1
        incremental.append(orjson.dumps(events)[1:-1])
    return Batches(orjson.dumps(snapshot)[1:-1], incremental, page.next_id - 1)
