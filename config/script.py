"""Latin <-> Cyrillic rendering of names (Serbian/Bosnian Gaj Latin <-> Vuk Cyrillic).

Both alphabets are official in BiH; the election definition may give an explicit Cyrillic
form for a name, otherwise this transliteration supplies it. The digraphs lj, nj, dž are
single Cyrillic letters (љ, њ, џ).
"""

from __future__ import annotations

_DIGRAPHS = {"Lj": "Љ", "LJ": "Љ", "lj": "љ", "Nj": "Њ", "NJ": "Њ", "nj": "њ", "Dž": "Џ", "DŽ": "Џ", "dž": "џ"}
_SINGLE = dict(
    zip(
        "ABVGDĐEŽZIJKLMNOPRSTĆUFHCČŠabvgdđežzijklmnoprstćufhcčš",
        "АБВГДЂЕЖЗИЈКЛМНОПРСТЋУФХЦЧШабвгдђежзијклмнопрстћуфхцчш",
    )
)


def latin_to_cyrillic(text: str) -> str:
    """Transliterate Gaj Latin to Serbian Cyrillic; characters outside the alphabet pass through
    (digits, punctuation, foreign letters such as Q/W/X/Y in party acronyms)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in _DIGRAPHS:
            out.append(_DIGRAPHS[pair])
            i += 2
            continue
        out.append(_SINGLE.get(text[i], text[i]))
        i += 1
    return "".join(out)
