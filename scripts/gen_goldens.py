#!/usr/bin/env python3
"""Reference token ids and vectors for all-MiniLM-L6-v2 (see scripts/gen-goldens).

Each output line: {"name", "text", "utf8_hex", "ids", "vec"}; utf8_hex carries the exact bytes
(JSON parsers in C cannot hold NUL inside strings). Vectors use 8 significant digits.
"""
import json, random, sys

import torch
from sentence_transformers import SentenceTransformer

model_dir, out_path = sys.argv[1], sys.argv[2]
torch.set_num_threads(2)

LONG = ("The quick brown fox jumps over the lazy dog while the committee deliberates on the "
        "quarterly budget, the weather turns unexpectedly cold, and engineers refactor the "
        "legacy billing system written decades ago in a language nobody remembers. ")

def texts():
    T = []
    add = lambda name, t: T.append((name, t))
    english = [
        "hello world", "Hello World!", "The cat sat on the mat.",
        "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
        "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
        "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
        "Someone in a gorilla costume is playing a set of drums.",
        "PostgreSQL is a powerful, open source object-relational database system.",
        "Qdrant is a vector similarity search engine.",
        "Sentence embeddings map text to dense vectors.",
        "How do I reset my password?", "What's the weather like tomorrow in Paris?",
        "I can't believe it's not butter!", "Don't stop believing.",
        "unaffable", "unbelievably antidisestablishmentarianism", "supercalifragilisticexpialidocious",
        "The year 2024 had 366 days; 1999 didn't.", "Call me at +1 (555) 123-4567 or email a.b@example.com.",
        "Visit https://example.com/path?q=1&r=two#frag for details.",
        "int main(void) { return 0; }", "SELECT * FROM users WHERE id = 42;",
        "x = (a + b) * c / d - e % f ^ g", "3.14159 2.71828 1.41421 6.02e23",
        "ALL CAPS SENTENCE SHOUTING LOUDLY", "mIxEd CaSe TeXt", "snake_case and kebab-case and CamelCase",
        "Wait... what?!", "--- *** ### @@@ !!!", "\"quoted\" 'single' `back` «guillemets» „German“",
        "a", "I", "A.", "ok", "no", "42", "The", "of", "   leading and trailing spaces   ",
        "tabs\tbetween\twords", "new\nlines\nhere", "carriage\r\nreturn", "multiple     spaces",
        "end with newline\n", "\n\n\nstarts with newlines",
    ]
    for i, t in enumerate(english):
        add("en%02d" % i, t)
    accents = [
        "naïve café résumé", "Crème brûlée à la française", "Ærøskøbing på Ærø", "Straße und Fußgänger",
        "Ñandú, pingüino y cigüeña", "Tiếng Việt có dấu", "İstanbul ve Iğdır", "ĞğŞşÇçÖöÜü",
        "Łódź, Gdańsk, Kraków", "Dvořák and Janáček", "ΣΊΣΥΦΟΣ σίσυφος", "Ελληνικά γράμματα",
        "Ǆǅǆ ǈ ǋ", "ﬁnance ﬂow ﬀ", "e\u0301 vs é", "a\u0300\u0301\u0302\u0303 stacked marks",
        "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "Ⅻ ⅻ ① ⑩ ½ ¾", "ℌℑℜ ℂℕℚ", "µ vs μ, Ω vs Ω, Å vs Å",
        "ﬆ ﬅ ǰ ẖ", "Ⓐⓑⓒ", "𝐀𝐁𝐂 𝕏𝕐ℤ",
    ]
    for i, t in enumerate(accents):
        add("acc%02d" % i, t)
    cjk = [
        "我爱北京天安门", "今天天气很好，我们去公园散步吧。", "中文English混合text", "東京は日本の首都です。",
        "ひらがなとカタカナ", "한국어 문장입니다.", "안녕하세요 세계", "漢字かな交じり文",
        "𠀀𠀁𪜀 rare ideographs", "豈更車 compatibility ideographs", "〇一二三 numbers", "「括弧」『二重』【隅】",
        "中", "日本語のテキストと123の数字", "Ｃｈｉｎｅｓｅ　全角　空格",
    ]
    for i, t in enumerate(cjk):
        add("cjk%02d" % i, t)
    scripts = [
        "Привет, мир! Как дела?", "مرحبا بالعالم", "שלום עולם", "สวัสดีชาวโลก", "नमस्ते दुनिया",
        "হ্যালো বিশ্ব", "გამარჯობა", "Բարեւ աշխարհ", "ሰላም ዓለም", "வணக்கம் உலகம்",
        "English русский 中文 العربية हिन्दी mixed", "Ελληνικά and Latin and Кириллица",
        "ا ب ت ث with harakat: مُحَمَّد", "Thai with marks: ภาษาไทย", "ߒߞߏ N'Ko script",
    ]
    for i, t in enumerate(scripts):
        add("scr%02d" % i, t)
    emoji = [
        "I love pizza 🍕🍕🍕", "😀😃😄😁", "👍🏽 thumbs up with skin tone", "👨‍👩‍👧‍👦 family ZWJ",
        "🇫🇷🇩🇪 flags", "❤️ red heart with VS16", "🥰 newer emoji", "🫠 melting face", "emoji😀glued",
        "★☆✓✗ symbols", "→ ← ↑ ↓ ⇒", "€100 £50 ¥1000 ₹20 ₿1", "© ® ™ ° § ¶", "∑∏∫√∞≈≠≤≥",
    ]
    for i, t in enumerate(emoji):
        add("emo%02d" % i, t)
    controls = [
        "nul\x00byte", "\x00", "bell\x07char", "esc\x1b[31mred\x1b[0m", "zero\u200bwidth\u200dspace",
        "\ufeffBOM at start", "soft\u00adhyphen", "replacement\ufffdchar", "\u2028line sep\u2029para sep",
        "nbsp\u00a0here\u202fnarrow", "\u3000ideographic space\u3000", "del\x7fchar", "c1\x85\x9fcontrols",
        "private\ue000use\U000f0000", "tag\U000e0041chars", "bidi\u202eoverride\u202c", "\x1c\x1d\x1e\x1f seps",
        "word\u0378unassigned", "\U0001d165\U0001d16d musical marks",
    ]
    for i, t in enumerate(controls):
        add("ctl%02d" % i, t)
    special = ["[CLS]", "[SEP]", "hello [SEP] world", "a[UNK]b", "[MASK] token here", "[PAD][PAD]",
               "[cls] lowercase is not special", "[CLS ] broken", "[[SEP]]", "x [MASK]"]
    for i, t in enumerate(special):
        add("spc%02d" % i, t)
    edge = ["", " ", "   ", "\t", "\n", "\r\n", "\u3000", "\u00a0\u2003", " \t\n ", "\u200b", "\x00\x00",
            ".", "!!!", "a" * 100, "a" * 101, "é" * 101, "b" * 300, ("word " * 10).strip(),
            "x" * 100 + " y", "##", "##ing", "un##able"]
    for i, t in enumerate(edge):
        add("edge%02d" % i, t)
    longs = [LONG * 3, LONG * 8, ("data " * 400).strip(), "中" * 300, "a." * 300,
             " ".join(str(i) for i in range(400)), (LONG * 2) + "é" * 150, "🍕 " * 300,
             ("word " * 253).strip(), ("word " * 254).strip(), ("word " * 255).strip()]
    for i, t in enumerate(longs):
        add("long%02d" % i, t)
    rnd = random.Random(20241121)
    pools = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x52f), (0x3040, 0x30ff),
             (0x4e00, 0x4fff), (0xac00, 0xaf00), (0x1f300, 0x1f64f), (0x2000, 0x206f)]
    for i in range(60):
        s = []
        for _ in range(rnd.randint(1, 60)):
            r = rnd.random()
            if r < 0.55:
                s.append(chr(rnd.randint(0x61, 0x7a)))
            elif r < 0.7:
                s.append(" ")
            else:
                a, b = rnd.choice(pools)
                s.append(chr(rnd.randint(a, b)))
        add("rnd%02d" % i, "".join(s))
    return T

T = texts()
assert len(T) >= 200, len(T)
model = SentenceTransformer(model_dir, device="cpu")
assert model.max_seq_length == 256, model.max_seq_length
strs = [t for _, t in T]
vecs = model.encode(strs, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
with open(out_path, "w", encoding="utf-8") as f:
    for (name, t), v in zip(T, vecs):
        tok = getattr(model, "preprocess", None) or model.tokenize
        ids = tok([t])["input_ids"][0].tolist()
        rec = {"name": name, "text": t, "utf8_hex": t.encode("utf-8").hex(), "ids": ids,
               "vec": [float("%.8g" % x) for x in v.tolist()]}
        f.write(json.dumps(rec, ensure_ascii=True) + "\n")
print("wrote %d texts to %s" % (len(T), out_path))
