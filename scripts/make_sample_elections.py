"""Regenerate config/elections/*.json (the shipped sample and the 30 x 35 stress ballot).

Deterministic: names are drawn from fixed pools with a fixed seed, so rerunning gives the same files.
The ballot-code key is config/keys/cec-test-ballot-code.pem, a TEST-ONLY key: a real package carries the
CEC's public key and the private key never leaves the CEC.

    python scripts/make_sample_elections.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
KEY = ROOT / "config" / "keys" / "cec-test-ballot-code.pem"

FIRST = ("Amra Adnan Lejla Emir Selma Haris Ajla Kenan Merima Tarik Jelena Nikola Marija Stefan Ivana Dragan "
         "Ana Ivan Mirela Đorđe Šejla Mirza Lana Dženan Azra Željko Snježana Čedomir Ljiljana Njegoš Dženana "
         "Zlatan Vesna Goran Sanela Ćamil Edin Nermina Bojan Maja Mladen Dijana Srđan Nataša Jasmin Amela").split()
LAST = ("Hadžić Kovačević Delić Begić Hodžić Jovanović Petrović Babić Marić Čaušević Šehić Mujić Ćosić "
        "Đurić Lukić Popović Husić Salihović Tadić Mehmedović Karić Ibrahimović Nikolić Pašić Bošnjak "
        "Radić Vuković Džafić Softić Ljubić Njegovan Zečević Šarić Alić Bećirović Grbić Knežević Pavlović "
        "Omerović Jurić Tomić Halilović Kurtović Stanić Vidović Zukić Ćatić Đokić").split()
LIST_NAMES = [
    "Savez za razvoj općine", "Narodni pokret Centar", "Stranka zelene budućnosti", "Građanski demokratski front",
    "Koalicija Zajedno za Mostar", "Socijalna alternativa", "Pokret mladih Bosne", "Stranka penzionera i rada",
    "Hrvatska narodna inicijativa", "Srpski demokratski savez", "Lista nezavisnih kandidata Ljubuški",
    "Nezavisni kandidat Šemsudin Džananović", "Demokratski pokret Drina", "Udruženi za Čapljinu",
    "Stranka ravnopravnosti", "Evropski put Sarajeva", "Pokret Naša Tuzla", "Seljačka stranka Posavine",
    "Unija građana Zenice", "Savez nezavisnih Krajine", "Lista za Neum", "Koalicija Dobro upravljanje",
    "Stranka rada i solidarnosti", "Bosanski patriotski blok", "Narodna stranka Podrinja", "Građanska lista Bihać",
    "Pokret Čisti grad", "Demokratska alijansa Trebinje", "Nova ljevica", "Savez za Gradačac",
]


def person(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if name not in used:
            used.add(name)
            return name


def public_key_hex() -> str:
    if not KEY.exists():
        KEY.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        KEY.write_bytes(pem)
    key = serialization.load_pem_private_key(KEY.read_bytes(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def council(rng: random.Random, used: set[str], n_lists: int, sizes: list[int]) -> dict:
    lists = []
    for i in range(n_lists):
        name = LIST_NAMES[i]
        n = 1 if name.startswith("Nezavisni kandidat") else sizes[i]
        cands = [{"id": f"l{i + 1}c{j + 1}", "number": j + 1,
                  "name": name.removeprefix("Nezavisni kandidat ") if n == 1 else person(rng, used)}
                 for j in range(n)]
        lists.append({"id": f"l{i + 1}", "number": i + 1, "name": name, "candidates": cands})
    return {"id": "vijece", "kind": "open_list",
            "title": "Općinsko vijeće",
            "instructions": "Označite jednu listu i najviše tri kandidata sa te liste",
            "max_preferences": 3, "lists": lists}


def base(eid: str, title: str, station_name: str, municipality: str, code: str) -> dict:
    return {
        "id": eid, "title": title, "date": "2024-10-06", "mode": "official",
        "station": {"code": code, "name": station_name, "municipality": municipality,
                    "registered_voters": 1200, "language": "bs"},
        "polls": {"opening": "07:00", "closing": "19:00", "turnout_reports": ["11:00", "15:00", "19:00"]},
        "omr": {"definite": 0.08, "marginal": 0.03, "ink_level": 150},
        "ballot_code_key": {"key_id": "CIK-TEST-1", "public_key_hex": public_key_hex()},
    }


def main() -> None:
    rng = random.Random(2024)
    used: set[str] = set()
    sample = base("LI2024", "Lokalni izbori 2024.", "OŠ \"Džemal Bijedić\" Čengić Vila", "Novo Sarajevo", "089A012")
    mayor = {"id": "nacelnik", "kind": "single_choice", "title": "Načelnik općine",
             "instructions": "Označite samo jednog kandidata", "vote_for": 1,
             "candidates": [{"id": f"m{i + 1}", "number": i + 1, "name": person(rng, used)} for i in range(8)]}
    sizes = [20, 17, 20, 12, 15, 9, 20, 6, 18, 14, 5, 1]
    sample["contests"] = [mayor, council(rng, used, 12, sizes)]
    sample["ballot_styles"] = [
        {"id": "N", "title": "Glasački listić za izbor načelnika", "contests": ["nacelnik"],
         "paper": {"width_mm": 210, "height_mm": 297}, "colour": "#ffffff",
         "boxes": {"box_mm": 7.0, "row_mm": 13.0, "column_min_mm": 120.0}},
        {"id": "V", "title": "Glasački listić za izbor općinskog vijeća", "contests": ["vijece"],
         "paper": {"width_mm": 297, "height_mm": None, "max_height_mm": 1000}, "colour": "#ffffff",
         "boxes": {"box_mm": 5.0, "row_mm": 6.5, "column_min_mm": 64.0}},
    ]
    out = ROOT / "config" / "elections"
    out.mkdir(parents=True, exist_ok=True)
    (out / "municipal-2024-sample.json").write_text(json.dumps(sample, ensure_ascii=False, indent=1) + "\n")

    rng = random.Random(3035)
    used = set()
    large = base("LI2024X", "Lokalni izbori 2024. (veliki listić)", "Dom kulture Centar", "Banja Luka", "062B104")
    contest = council(rng, used, 30, [35] * 30)
    for pl in contest["lists"]:  # no single independents on the stress ballot: every list full
        if len(pl["candidates"]) == 1:
            pl["name"] = "Lista nezavisnih kandidata Centar"
            pl["candidates"] = [{"id": f"{pl['id']}c{j + 1}", "number": j + 1, "name": person(rng, used)} for j in range(35)]
    large["contests"] = [contest]
    large["ballot_styles"] = [{"id": "V", "title": "Glasački listić za izbor gradske skupštine", "contests": ["vijece"],
                               "paper": {"width_mm": 420, "height_mm": None, "max_height_mm": 1200},
                               "boxes": {"box_mm": 4.5, "row_mm": 5.5, "column_min_mm": 64.0}}]
    (out / "council-30x35.json").write_text(json.dumps(large, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
