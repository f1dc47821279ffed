"""Fictional subscribers, as a Romanian form tool exports them, for demos, tests and benchmarks.

Real subscriber lists cannot leave the people who own them, yet segments, imports and previews are only
worth showing with data that has real shape: municipalities and ministries, Romanian names with their
diacritics, a mix of languages and topics, blanks where people leave fields blank. Every address is at
example.org or example.com, which never reach anyone, and the same seed always gives the same rows.

    python -m subscribers.sample [count] [path]    # 300 rows into content/subscribers.sample.csv
"""

from __future__ import annotations

import csv
import re
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import combinations
from pathlib import Path
from random import Random
from typing import TypeVar

HEADER: tuple[str, ...] = (
    "Marcaj de timp", "Adresă de e-mail", "Nume", "Prenume", "Organizație", "Tip organizație", "Oraș", "Țara",
    "Limba", "Domenii de interes", "Acord GDPR", "Rol în proiect",
)

_SAMPLE = Path(__file__).resolve().parent.parent / "content" / "subscribers.sample.csv"
_FIRST_DAY, _END = date(2025, 1, 1), date(2027, 1, 1)
_DAYS = tuple((_FIRST_DAY + timedelta(days=day)).isoformat() for day in range((_END - _FIRST_DAY).days))
_MORNING, _WAKING = 7 * 3600, 16 * 3600  # forms are answered from 07:00 to 22:59
_SECONDS = len(_DAYS) * _WAKING  # the waking seconds of 2025 and 2026, counted from the first
_TOPICS = (
    "Apeluri de proiecte", "Rețele de transfer", "Rețele de planificare a acțiunilor", "Orașe neutre climatic",
    "Inovare digitală", "Dezvoltarea capacităților", "Inovare urbană (EUI)", "Industrii culturale și creative",
)
_PERSONAL_HOSTS = ("example.com", "mail.example.com", "example.org", "posta.example.org")

_T = TypeVar("_T")
_Name = tuple[str, str]  # as written, and as it goes into an address
_Pair = tuple[tuple[_Name, ...], tuple[_Name, ...]]  # for men, for women


@dataclass(frozen=True, slots=True)
class _Organisation:
    name: str
    kind: str  # the form's Romanian label: Primărie, Minister, ...
    city: str
    host: str


@dataclass(frozen=True, slots=True)
class _Country:
    code: str
    given: _Pair
    family: _Pair  # Petrov for a man, Petrova for a woman
    organisations: Mapping[str, tuple[_Organisation, ...]]  # by kind
    languages: tuple[str, ...]  # a draw: each answer as often as its weight


def _draw(weights: Mapping[_T, int]) -> tuple[_T, ...]:
    """A tuple that `Random.choice` picks from with these weights: cheaper per row than `choices`."""
    return tuple(value for value, weight in weights.items() for _ in range(weight))


def _slug(text: str) -> str:
    """`Ștefănescu` -> `stefanescu`, `van den Berg` -> `vandenberg`: ASCII letters only."""
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode())


def _names(text: str) -> tuple[_Name, ...]:
    return tuple((name, _slug(name)) for name in text.split(", "))


def _host(kind: str, slug: str) -> str:
    return f"{slug}.example.{'com' if kind == 'Companie' else 'org'}"


# Seats of real public bodies (people and addresses are invented); associations and companies are made up.
_RO_CITIES = (
    ("București", "bucuresti"), ("Cluj-Napoca", "cluj"), ("Timișoara", "timisoara"), ("Iași", "iasi"),
    ("Botoșani", "botosani"), ("Brașov", "brasov"), ("Constanța", "constanta"), ("Oradea", "oradea"),
    ("Sibiu", "sibiu"), ("Craiova", "craiova"), ("Piatra Neamț", "piatra-neamt"), ("Alba Iulia", "alba-iulia"),
)
_ORGANISATIONS: dict[str, tuple[tuple[str, str, str, str], ...]] = {  # country -> (kind, name, city, host)
    "RO": (
        *(("Primărie", f"Primăria Municipiului {city}", city, f"primaria-{slug}") for city, slug in _RO_CITIES),
        ("Primărie", "Primăria Sectorului 2", "București", "ps2"),
        ("Primărie", "Primăria Sectorului 6", "București", "primarie6"),
        ("Minister", "Ministerul Dezvoltării, Lucrărilor Publice și Administrației", "București", "mdlpa"),
        ("Minister", "Ministerul Investițiilor și Proiectelor Europene", "București", "mfe"),
        ("Minister", "Ministerul Mediului, Apelor și Pădurilor", "București", "mmediu"),
        ("Minister", "Ministerul Culturii", "București", "cultura"),
        ("Minister", "Ministerul Cercetării, Inovării și Digitalizării", "București", "research"),
        ("Agenție", "Agenția pentru Dezvoltare Regională Nord-Est", "Piatra Neamț", "adrnordest"),
        ("Agenție", "Agenția de Dezvoltare Regională Nord-Vest", "Cluj-Napoca", "nord-vest"),
        ("Agenție", "Agenția pentru Dezvoltare Regională Vest", "Timișoara", "adrvest"),
        ("Agenție", "Agenția pentru Dezvoltare Regională Centru", "Alba Iulia", "adrcentru"),
        ("Agenție", "Agenția pentru Dezvoltare Regională Sud-Vest Oltenia", "Craiova", "adroltenia"),
        ("Agenție", "Agenția pentru Dezvoltare Regională București-Ilfov", "București", "adrbi"),
        ("Agenție", "Agenția Națională pentru Protecția Mediului", "București", "anpm"),
        ("Agenție", "Agenția pentru Protecția Mediului Constanța", "Constanța", "apmct"),
        ("Agenție", "Agenția Metropolitană pentru Dezvoltare Durabilă Brașov", "Brașov", "metropolabrasov"),
        ("Universitate", "Universitatea din București", "București", "unibuc"),
        ("Universitate", "Academia de Studii Economice din București", "București", "ase"),
        ("Universitate", "Universitatea de Arhitectură și Urbanism „Ion Mincu”", "București", "uauim"),
        ("Universitate", "Universitatea Babeș-Bolyai", "Cluj-Napoca", "ubbcluj"),
        ("Universitate", "Universitatea Tehnică din Cluj-Napoca", "Cluj-Napoca", "utcluj"),
        ("Universitate", "Universitatea de Vest din Timișoara", "Timișoara", "uvt"),
        ("Universitate", "Universitatea Politehnica Timișoara", "Timișoara", "upt"),
        ("Universitate", "Universitatea „Alexandru Ioan Cuza” din Iași", "Iași", "uaic"),
        ("Universitate", "Universitatea Transilvania din Brașov", "Brașov", "unitbv"),
        ("Universitate", "Universitatea Ovidius din Constanța", "Constanța", "univ-ovidius"),
        ("Universitate", "Universitatea din Oradea", "Oradea", "uoradea"),
        ("Universitate", "Universitatea „Lucian Blaga” din Sibiu", "Sibiu", "ulbsibiu"),
        ("Universitate", "Universitatea din Craiova", "Craiova", "ucv"),
        ("Universitate", "Universitatea „1 Decembrie 1918” din Alba Iulia", "Alba Iulia", "uab"),
        ("ONG", "Asociația Orașul Verde", "București", "orasulverde"),
        ("ONG", "Asociația pentru Mobilitate Urbană Cluj", "Cluj-Napoca", "mobilitate-cluj"),
        ("ONG", "Asociația Spații Publice Vii", "Timișoara", "spatiivii"),
        ("ONG", "Asociația Tineri pentru Iași", "Iași", "tineriiasi"),
        ("ONG", "Fundația Comunitară Botoșani", "Botoșani", "fcbotosani"),
        ("ONG", "Asociația Litoral Sustenabil", "Constanța", "litoral"),
        ("ONG", "Asociația Cetatea Culturală Sibiu", "Sibiu", "cetateasibiu"),
        ("ONG", "Asociația Oltenia Creativă", "Craiova", "olteniacreativa"),
        ("ONG", "Fundația Ceahlăul Comunitar", "Piatra Neamț", "ceahlaul"),
        ("Companie", "Urbanis Consulting SRL", "București", "urbanis"),
        ("Companie", "Carpați Smart Systems SRL", "Cluj-Napoca", "carpati-smart"),
        ("Companie", "Bega Proiecte Europene SRL", "Timișoara", "bega-proiecte"),
        ("Companie", "Copou Software SRL", "Iași", "copou"),
        ("Companie", "Energie Verde Transilvania SRL", "Brașov", "energieverde"),
        ("Companie", "Crișana Tech SRL", "Oradea", "crisanatech"),
        ("Companie", "Jiu Consulting SRL", "Craiova", "jiuconsulting"),
        ("Altele", "Asociația Municipiilor din România", "București", "amr"),
        ("Altele", "Camera de Comerț și Industrie Cluj", "Cluj-Napoca", "cciacluj"),
        ("Altele", "Zona Metropolitană Iași", "Iași", "zmi"),
        ("Altele", "Biblioteca Județeană „Mihai Eminescu” Botoșani", "Botoșani", "bjbotosani"),
        ("Altele", "Consiliul Județean Constanța", "Constanța", "cjc"),
        ("Altele", "Muzeul Național Brukenthal", "Sibiu", "brukenthal"),
        ("Altele", "Grupul de Acțiune Locală Ceahlău", "Piatra Neamț", "gal-ceahlau"),
    ),
    "MD": (
        ("Primărie", "Primăria Municipiului Chișinău", "Chișinău", "chisinau"),
        ("Primărie", "Primăria Municipiului Bălți", "Bălți", "balti"),
        ("Primărie", "Primăria Municipiului Cahul", "Cahul", "cahul"),
        ("Minister", "Ministerul Dezvoltării Economice și Digitalizării", "Chișinău", "mded"),
        ("Minister", "Ministerul Infrastructurii și Dezvoltării Regionale", "Chișinău", "midr"),
        ("Agenție", "Agenția de Dezvoltare Regională Nord", "Bălți", "adrnord"),
        ("Agenție", "Agenția de Guvernare Electronică", "Chișinău", "egov"),
        ("Universitate", "Universitatea de Stat din Moldova", "Chișinău", "usm"),
        ("Universitate", "Universitatea Tehnică a Moldovei", "Chișinău", "utm"),
        ("Universitate", "Universitatea de Stat „Alecu Russo” din Bălți", "Bălți", "usarb"),
        ("ONG", "Asociația Obștească Orașul Meu", "Chișinău", "orasulmeu"),
        ("ONG", "Asociația Obștească Cahul Verde", "Cahul", "cahulverde"),
        ("Companie", "Codru Soft SRL", "Chișinău", "codrusoft"),
        ("Altele", "Congresul Autorităților Locale din Moldova", "Chișinău", "calm"),
    ),
    "BG": (
        ("Primărie", "Sofia Municipality", "Sofia", "sofia"),
        ("Primărie", "Plovdiv Municipality", "Plovdiv", "plovdiv"),
        ("Primărie", "Varna Municipality", "Varna", "varna"),
        ("Minister", "Ministry of Regional Development and Public Works", "Sofia", "mrrb"),
        ("Agenție", "Sofia Investment Agency", "Sofia", "investsofia"),
        ("Universitate", "Sofia University St. Kliment Ohridski", "Sofia", "uni-sofia"),
        ("Universitate", "Technical University of Varna", "Varna", "tu-varna"),
        ("ONG", "Sofia Urban Lab Foundation", "Sofia", "urbanlab"),
        ("Companie", "Vitosha Digital Ltd", "Sofia", "vitosha-digital"),
        ("Altele", "National Association of Municipalities in the Republic of Bulgaria", "Sofia", "namrb"),
    ),
    "IT": (
        ("Primărie", "Comune di Messina", "Messina", "comune-messina"),
        ("Primărie", "Comune di Palermo", "Palermo", "comune-palermo"),
        ("Primărie", "Comune di Bologna", "Bologna", "comune-bologna"),
        ("Primărie", "Comune di Torino", "Torino", "comune-torino"),
        ("Minister", "Ministero dell'Ambiente e della Sicurezza Energetica", "Roma", "mase"),
        ("Agenție", "Agenzia per la Coesione Territoriale", "Roma", "agenziacoesione"),
        ("Universitate", "Università degli Studi di Messina", "Messina", "unime"),
        ("Universitate", "Università di Bologna", "Bologna", "unibo"),
        ("Universitate", "Politecnico di Torino", "Torino", "polito"),
        ("ONG", "Associazione Città Sostenibili", "Bologna", "cittasostenibili"),
        ("Companie", "Stretto Digitale S.r.l.", "Messina", "strettodigitale"),
        ("Altele", "ANCI Sicilia", "Palermo", "anci-sicilia"),
    ),
    "LT": (
        ("Primărie", "Vilnius City Municipality", "Vilnius", "vilnius"),
        ("Primărie", "Kaunas City Municipality", "Kaunas", "kaunas"),
        ("Minister", "Ministry of the Interior of the Republic of Lithuania", "Vilnius", "vrm"),
        ("Agenție", "Central Project Management Agency", "Vilnius", "cpva"),
        ("Universitate", "Vilnius University", "Vilnius", "vu"),
        ("Universitate", "Kaunas University of Technology", "Kaunas", "ktu"),
        ("ONG", "Kaunas Urban Forum", "Kaunas", "urbanforum"),
        ("Companie", "Neris Data UAB", "Vilnius", "nerisdata"),
        ("Altele", "Association of Local Authorities in Lithuania", "Vilnius", "lsa"),
    ),
    "PT": (
        ("Primărie", "Câmara Municipal de Lisboa", "Lisboa", "cm-lisboa"),
        ("Primărie", "Câmara Municipal do Porto", "Porto", "cm-porto"),
        ("Primărie", "Câmara Municipal de Braga", "Braga", "cm-braga"),
        ("Minister", "Ministério da Coesão Territorial", "Lisboa", "coesao"),
        ("Agenție", "Agência para o Desenvolvimento e Coesão", "Lisboa", "adcoesao"),
        ("Universitate", "Universidade de Lisboa", "Lisboa", "ulisboa"),
        ("Universitate", "Universidade do Porto", "Porto", "up"),
        ("Universitate", "Universidade do Minho", "Braga", "uminho"),
        ("ONG", "Associação Cidades Vivas", "Porto", "cidadesvivas"),
        ("Companie", "Tejo Inovação, Lda.", "Lisboa", "tejo-inovacao"),
        ("Altele", "Área Metropolitana do Porto", "Porto", "amp"),
    ),
    "BE": (
        ("Primărie", "Ville de Bruxelles", "Bruxelles", "bruxelles"),
        ("Primărie", "Stad Gent", "Gent", "stad-gent"),
        ("Primărie", "Stad Antwerpen", "Antwerpen", "antwerpen"),
        ("Primărie", "Ville de Liège", "Liège", "liege"),
        ("Minister", "Service public fédéral Mobilité et Transports", "Bruxelles", "mobilit"),
        ("Agenție", "Agentschap Innoveren & Ondernemen", "Bruxelles", "vlaio"),
        ("Universitate", "Université libre de Bruxelles", "Bruxelles", "ulb"),
        ("Universitate", "Universiteit Gent", "Gent", "ugent"),
        ("Universitate", "Université de Liège", "Liège", "uliege"),
        ("ONG", "Urban Commons Brussels asbl", "Bruxelles", "urbancommons"),
        ("Companie", "Meuse Urban Advisory SRL", "Liège", "meuse-urban"),
        ("Altele", "European Committee of the Regions", "Bruxelles", "cor"),
    ),
    "GR": (
        ("Primărie", "Municipality of Athens", "Athina", "cityofathens"),
        ("Primărie", "Municipality of Thessaloniki", "Thessaloniki", "thessaloniki"),
        ("Minister", "Ministry of Interior", "Athina", "ypes"),
        ("Minister", "Ministry of Digital Governance", "Athina", "mindigital"),
        ("Agenție", "Metropolitan Development Agency of Thessaloniki", "Thessaloniki", "mdat"),
        ("Universitate", "National Technical University of Athens", "Athina", "ntua"),
        ("Universitate", "Aristotle University of Thessaloniki", "Thessaloniki", "auth"),
        ("ONG", "Athens Neighbourhoods Network", "Athina", "neighbourhoods"),
        ("Companie", "Aegean Smart Cities S.A.", "Athina", "aegean-smart"),
        ("Altele", "Central Union of Municipalities of Greece", "Athina", "kedke"),
    ),
    "ES": (
        ("Primărie", "Ayuntamiento de Madrid", "Madrid", "madrid"),
        ("Primărie", "Ajuntament de Barcelona", "Barcelona", "bcn"),
        ("Primărie", "Ayuntamiento de Valencia", "Valencia", "valencia"),
        ("Primărie", "Ayuntamiento de Sevilla", "Sevilla", "sevilla"),
        ("Minister", "Ministerio para la Transición Ecológica y el Reto Demográfico", "Madrid", "miteco"),
        ("Agenție", "Agencia de Ecología Urbana de Barcelona", "Barcelona", "bcnecologia"),
        ("Universitate", "Universidad Politécnica de Madrid", "Madrid", "upm"),
        ("Universitate", "Universitat de Barcelona", "Barcelona", "ub"),
        ("Universitate", "Universidad de Sevilla", "Sevilla", "us"),
        ("ONG", "Asociación Ciudades Habitables", "Valencia", "ciudadeshabitables"),
        ("Companie", "Guadalquivir Datos S.L.", "Sevilla", "guadalquivir-datos"),
        ("Altele", "Federación Española de Municipios y Provincias", "Madrid", "femp"),
    ),
    "HU": (
        ("Primărie", "Budapest Főváros Önkormányzata", "Budapest", "budapest"),
        ("Primărie", "Debrecen Megyei Jogú Város Önkormányzata", "Debrecen", "debrecen"),
        ("Primărie", "Szeged Megyei Jogú Város Önkormányzata", "Szeged", "szeged"),
        ("Primărie", "Pécs Megyei Jogú Város Önkormányzata", "Pécs", "pecs"),
        ("Minister", "Területfejlesztési Minisztérium", "Budapest", "tfm"),
        ("Agenție", "Digitális Magyarország Ügynökség", "Budapest", "dmu"),
        ("Universitate", "Budapesti Műszaki és Gazdaságtudományi Egyetem", "Budapest", "bme"),
        ("Universitate", "Debreceni Egyetem", "Debrecen", "unideb"),
        ("Universitate", "Szegedi Tudományegyetem", "Szeged", "u-szeged"),
        ("Universitate", "Pécsi Tudományegyetem", "Pécs", "pte"),
        ("ONG", "Városi Közösségek Egyesület", "Pécs", "varosikozossegek"),
        ("Companie", "Tisza Digitális Kft.", "Szeged", "tisza-digital"),
        ("Altele", "Magyar Önkormányzatok Szövetsége", "Budapest", "moosz"),
    ),
    "NL": (
        ("Primărie", "Gemeente Amsterdam", "Amsterdam", "amsterdam"),
        ("Primărie", "Gemeente Rotterdam", "Rotterdam", "rotterdam"),
        ("Primărie", "Gemeente Utrecht", "Utrecht", "utrecht"),
        ("Primărie", "Gemeente Eindhoven", "Eindhoven", "eindhoven"),
        ("Minister", "Ministerie van Binnenlandse Zaken en Koninkrijksrelaties", "Den Haag", "minbzk"),
        ("Agenție", "Rijksdienst voor Ondernemend Nederland", "Den Haag", "rvo"),
        ("Universitate", "Universiteit van Amsterdam", "Amsterdam", "uva"),
        ("Universitate", "Erasmus Universiteit Rotterdam", "Rotterdam", "eur"),
        ("Universitate", "Universiteit Utrecht", "Utrecht", "uu"),
        ("Universitate", "Technische Universiteit Eindhoven", "Eindhoven", "tue"),
        ("ONG", "Stichting Groene Stad", "Utrecht", "groenestad"),
        ("Companie", "Maas Data B.V.", "Rotterdam", "maasdata"),
        ("Altele", "Vereniging van Nederlandse Gemeenten", "Den Haag", "vng"),
    ),
}

_RO_MEN = _names(
    "Andrei, Alexandru, Mihai, Ion, Ștefan, Bogdan, Cristian, Răzvan, Vlad, Tudor, Gheorghe, Radu, Sorin, Cătălin, "
    "Mircea, Florin, Adrian, Horia, Matei, Ionuț, Lucian, Dragoș, Victor, Marius, Ovidiu, Liviu, Silviu, Costin, "
    "Dănuț, Aurelian")
_RO_WOMEN = _names(
    "Ana, Maria, Elena, Ioana, Andreea, Alexandra, Cristina, Mihaela, Irina, Raluca, Oana, Ștefania, Diana, "
    "Bianca, Teodora, Roxana, Simona, Gabriela, Alina, Iulia, Corina, Adina, Anca, Sânziana, Ilinca, Brândușa, "
    "Mădălina, Luminița, Daniela, Smaranda")
_RO_FAMILY = _names(
    "Popescu, Ionescu, Popa, Pop, Radu, Dumitrescu, Stoica, Stan, Munteanu, Constantin, Gheorghiu, Matei, Marin, "
    "Ciobanu, Rusu, Mocanu, Lungu, Toma, Dinu, Neagu, Mihăilescu, Țăranu, Ștefănescu, Bălan, Răducanu, Sârbu, "
    "Cârstea, Șerban, Vasilescu, Cojocaru, Moldovan, Oprea, Nistor, Iordache, Crăciun, Ene, Bîrsan, Pîrvu, "
    "Tănase, Preda, Mureșan, Florea, Zamfir, Năstase, Manea, Voicu, Lazăr, Anghel, Cîmpeanu, Roșu, Grigoraș, "
    "Chirilă, Costache, Botezatu, Frățilă, Hațegan, Țurcan, Drăgulescu, Ursu, Jitaru")
_MD_FAMILY = _names(
    "Ceban, Rusu, Cojocaru, Popa, Lungu, Munteanu, Țurcanu, Bivol, Grosu, Guțu, Moraru, Botnaru, Sârbu, Ciobanu, "
    "Rotari, Cebotari, Croitoru, Melnic, Ursu, Bejenaru")
_ES_SURNAMES = (
    "García", "López", "Martínez", "Sánchez", "Fernández", "Gómez", "Ruiz", "Díaz", "Moreno", "Muñoz", "Álvarez",
    "Romero", "Navarro", "Torres",
)
_ES_FAMILY = tuple((name, _slug(name)) for name in (f"{a} {b}" for a in _ES_SURNAMES for b in _ES_SURNAMES if a != b))


def _same(family: tuple[_Name, ...]) -> _Pair:
    return family, family


_PEOPLE: dict[str, tuple[_Pair, _Pair]] = {  # country -> (given names, family names)
    "RO": ((_RO_MEN, _RO_WOMEN), _same(_RO_FAMILY)),
    "MD": ((_names("Ion, Vasile, Vitalie, Sergiu, Andrei, Igor, Victor, Dumitru, Veaceslav, Nicolae, Iurie, Radu"),
            _names("Natalia, Olga, Elena, Tatiana, Svetlana, Ana, Mariana, Cristina, Doina, Veronica, Lilia")),
           _same(_MD_FAMILY)),
    "BG": ((_names("Ivan, Georgi, Dimitar, Nikolay, Petar, Hristo, Stoyan, Todor, Martin, Aleksandar"),
            _names("Maria, Elena, Ivanka, Desislava, Gergana, Petya, Nadezhda, Radostina, Tsvetelina, Yoana")),
           (_names("Petrov, Ivanov, Georgiev, Dimitrov, Nikolov, Todorov, Stoyanov, Hristov, Kolev, Angelov"),
            _names("Petrova, Ivanova, Georgieva, Dimitrova, Nikolova, Todorova, Stoyanova, Hristova, Koleva, "
                   "Angelova"))),
    "IT": ((_names("Giuseppe, Marco, Francesco, Alessandro, Luca, Salvatore, Andrea, Matteo, Giovanni, Antonio"),
            _names("Giulia, Francesca, Chiara, Sara, Martina, Valentina, Alessia, Federica, Elena, Rosaria")),
           _same(_names("Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco, Bruno, "
                         "Gallo, Lombardo, Caruso, La Rosa, D'Angelo"))),
    "LT": ((_names("Jonas, Tomas, Mantas, Lukas, Darius, Andrius, Paulius, Mindaugas, Vytautas, Rokas"),
            _names("Rūta, Eglė, Austėja, Gabija, Ieva, Jurgita, Lina, Aistė, Giedrė, Neringa")),
           (_names("Kazlauskas, Jankauskas, Petrauskas, Stankevičius, Vasiliauskas, Žukauskas, Butkus, Paulauskas, "
                   "Urbonas, Navickas"),
            _names("Kazlauskienė, Jankauskaitė, Petrauskienė, Stankevičiūtė, Vasiliauskienė, Žukauskaitė, Butkutė, "
                   "Paulauskienė, Urbonaitė, Navickienė"))),
    "PT": ((_names("João, Pedro, Tiago, Miguel, Rui, Nuno, Ricardo, Gonçalo, André, Luís"),
            _names("Ana, Inês, Mariana, Beatriz, Catarina, Sofia, Joana, Rita, Marta, Leonor")),
           _same(_names("Silva, Santos, Ferreira, Pereira, Oliveira, Costa, Rodrigues, Martins, Sousa, Fernandes, "
                         "Gonçalves, Carvalho, Almeida, Lopes, Ribeiro"))),
    "BE": ((_names("Thomas, Lucas, Maxime, Pieter, Wouter, Julien, Nicolas, Jan, Bart, Arnaud"),
            _names("Marie, Sophie, Laura, Charlotte, Lotte, Elise, Camille, Julie, An, Hanne")),
           _same(_names("Peeters, Janssens, Maes, Jacobs, Willems, Dubois, Lambert, Dupont, Claes, Goossens, Mertens, "
                         "Leclercq, Wouters, De Smet, Vandenberghe"))),
    "GR": ((_names("Georgios, Dimitrios, Konstantinos, Ioannis, Nikolaos, Panagiotis, Christos, Vasileios, "
                   "Athanasios, Michail"),
            _names("Maria, Eleni, Aikaterini, Vasiliki, Sofia, Georgia, Dimitra, Anastasia, Christina, Ioanna")),
           (_names("Papadopoulos, Papadakis, Georgiou, Nikolaidis, Karagiannis, Vlachos, Oikonomou, Dimitriou, "
                   "Makris, Pappas"),
            _names("Papadopoulou, Papadaki, Georgiou, Nikolaidou, Karagianni, Vlachou, Oikonomou, Dimitriou, Makri, "
                   "Pappa"))),
    "ES": ((_names("Javier, Carlos, David, Pablo, Daniel, Alejandro, Sergio, Jorge, Álvaro, Manuel"),
            _names("María, Lucía, Carmen, Laura, Paula, Marta, Elena, Cristina, Sara, Nuria")),
           _same(_ES_FAMILY)),
    "HU": ((_names("László, István, Zoltán, Gábor, Péter, Attila, Tamás, Balázs, Dániel, Ádám"),
            _names("Katalin, Zsófia, Eszter, Anna, Réka, Krisztina, Judit, Andrea, Nóra, Dóra")),
           _same(_names("Nagy, Kovács, Tóth, Szabó, Horváth, Varga, Kiss, Molnár, Németh, Farkas, Balogh, Papp, "
                         "Takács, Juhász, Lakatos"))),
    "NL": ((_names("Daan, Sem, Bram, Thijs, Jeroen, Maarten, Ruben, Lars, Koen, Sander"),
            _names("Emma, Sanne, Lotte, Femke, Anouk, Eva, Iris, Fleur, Lisa, Marieke")),
           _same(_names("de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Visser, Smit, Meijer, de Boer, "
                         "Mulder, Bos, Vos, Peters, Hendriks"))),
}

# Who answers the form: mostly Romanian; Moldova reads Romanian; elsewhere English. A tenth leave Limba blank.
_LANGUAGES = {
    "RO": _draw({"ro": 66, "ambele": 17, "en": 7, "": 10}),
    "MD": _draw({"ro": 66, "ambele": 14, "en": 10, "": 10}),
}
_FOREIGN_LANGUAGES = _draw({"en": 70, "ambele": 20, "": 10})
_COUNTRY_DRAW = _draw({"RO": 65, "MD": 6, "IT": 4, "BG": 4, "ES": 4, "PT": 3, "GR": 3, "BE": 3, "LT": 3, "HU": 3,
                       "NL": 2})
_KIND_DRAW = _draw({"Primărie": 30, "Universitate": 16, "ONG": 14, "Agenție": 12, "Companie": 12, "Altele": 9,
                    "Minister": 7})
_ROLE_DRAW = _draw({"": 40, "expert": 22, "coordonator": 15, "comunicare": 13, "trainer": 10})
_TOPIC_SIZE_DRAW = _draw({0: 5, 1: 35, 2: 40, 3: 20})  # how many topics a person ticks
_TOPIC_SETS = tuple(tuple("; ".join(chosen) for chosen in combinations(_TOPICS, size)) for size in range(4))


def _country(code: str) -> _Country:
    given, family = _PEOPLE[code]
    organisations: dict[str, list[_Organisation]] = {}
    for kind, name, city, slug in _ORGANISATIONS[code]:
        organisations.setdefault(kind, []).append(_Organisation(name, kind, city, _host(kind, slug)))
    return _Country(code, given, family, {kind: tuple(each) for kind, each in organisations.items()},
                    _LANGUAGES.get(code, _FOREIGN_LANGUAGES))


_COUNTRIES = {code: _country(code) for code in _ORGANISATIONS}


def _timestamp(waking_second: int) -> str:
    """`YYYY-MM-DD HH:MM:SS` for the `waking_second`-th waking second since 2025-01-01 07:00."""
    day, second = divmod(waking_second, _WAKING)
    second += _MORNING
    return f"{_DAYS[day]} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"


def _email(given: str, family: str, number: int, host: str, initial: bool) -> str:
    """Unique by `number`: the local part's only digits, always just before the `@`."""
    return f"{given[0] if initial else given}.{family}.{number}@{host}"


def people(count: int, seed: int = 2027) -> Iterator[tuple[str, ...]]:
    """`count` fictional subscribers as rows under HEADER, oldest first, the same rows for the same seed."""
    rng = Random(seed)
    choice, random, randrange = rng.choice, rng.random, rng.randrange
    for number in range(1, count + 1):
        country = _COUNTRIES[choice(_COUNTRY_DRAW)]
        woman = random() < 0.5
        given, given_slug = choice(country.given[woman])
        family, family_slug = choice(country.family[woman])
        organisation = choice(country.organisations[choice(_KIND_DRAW)])
        host = organisation.host if random() < 0.85 else choice(_PERSONAL_HOSTS)
        yield (
            _timestamp(((number - 1) * _SECONDS + randrange(_SECONDS)) // count),  # in order, never past 2026
            _email(given_slug, family_slug, number, host, random() < 0.2),
            family,
            given,
            organisation.name,
            organisation.kind if random() >= 0.05 else "",
            organisation.city,
            country.code,
            choice(country.languages),
            choice(_TOPIC_SETS[choice(_TOPIC_SIZE_DRAW)]),
            "Da" if random() >= 0.03 else "Nu",
            choice(_ROLE_DRAW),
        )


def write_csv(path: Path, count: int, seed: int = 2027) -> None:
    """HEADER and `count` rows of `people`, UTF-8 and comma-delimited, as a form tool downloads them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        writer.writerows(people(count, seed))


if __name__ == "__main__":
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else _SAMPLE
    write_csv(target, rows)
    print(f"{rows} fictional subscribers -> {target}")
