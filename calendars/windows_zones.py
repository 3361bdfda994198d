"""Windows and Exchange time zone names → IANA zones, for TZIDs in calendar files.

Outlook, Exchange and OWA often write a Windows time zone ID (``Eastern Standard Time``) or,
in older exports, the zone's *display name* (``(UTC-05:00) Eastern Time (US & Canada)``, or
``(GMT-05.00) ...`` before Windows 7) as the TZID. Windows IDs map to IANA zones through
Unicode CLDR's ``windowsZones.xml`` table (the "001" territory), as shipped by `tzlocal`
(``tzlocal.windows_tz.win_tz``). Display names map to Windows IDs through `DISPLAY_NAMES`,
transcribed from the Windows time zone registry (``HKLM\\SOFTWARE\\Microsoft\\Windows NT\\
CurrentVersion\\Time Zones\\<ID>\\Display``, as listed in Microsoft's "Default Time Zones"
page and ``tzutil /l``); the offset prefix is dropped, so a name still matches after the zone's
offset changed between Windows releases.
"""

import re
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from tzlocal.windows_tz import win_tz

# Windows display name (without its "(UTC±hh:mm) " prefix) → Windows time zone ID.
DISPLAY_NAMES: dict[str, str] = {
    "International Date Line West": "Dateline Standard Time",
    "Coordinated Universal Time-11": "UTC-11",
    "Aleutian Islands": "Aleutian Standard Time",
    "Hawaii": "Hawaiian Standard Time",
    "Marquesas Islands": "Marquesas Standard Time",
    "Alaska": "Alaskan Standard Time",
    "Coordinated Universal Time-09": "UTC-09",
    "Baja California": "Pacific Standard Time (Mexico)",
    "Coordinated Universal Time-08": "UTC-08",
    "Pacific Time (US & Canada)": "Pacific Standard Time",
    "Pacific Time (US and Canada)": "Pacific Standard Time",
    "Pacific Time (US & Canada); Tijuana": "Pacific Standard Time",
    "Arizona": "US Mountain Standard Time",
    "Chihuahua, La Paz, Mazatlan": "Mountain Standard Time (Mexico)",
    "La Paz, Mazatlan": "Mountain Standard Time (Mexico)",
    "Mountain Time (US & Canada)": "Mountain Standard Time",
    "Mountain Time (US and Canada)": "Mountain Standard Time",
    "Yukon": "Yukon Standard Time",
    "Central America": "Central America Standard Time",
    "Central Time (US & Canada)": "Central Standard Time",
    "Central Time (US and Canada)": "Central Standard Time",
    "Easter Island": "Easter Island Standard Time",
    "Guadalajara, Mexico City, Monterrey": "Central Standard Time (Mexico)",
    "Saskatchewan": "Canada Central Standard Time",
    "Bogota, Lima, Quito, Rio Branco": "SA Pacific Standard Time",
    "Bogota, Lima, Quito": "SA Pacific Standard Time",
    "Chetumal": "Eastern Standard Time (Mexico)",
    "Eastern Time (US & Canada)": "Eastern Standard Time",
    "Eastern Time (US and Canada)": "Eastern Standard Time",
    "Haiti": "Haiti Standard Time",
    "Havana": "Cuba Standard Time",
    "Indiana (East)": "US Eastern Standard Time",
    "Turks and Caicos": "Turks And Caicos Standard Time",
    "Asuncion": "Paraguay Standard Time",
    "Atlantic Time (Canada)": "Atlantic Standard Time",
    "Caracas": "Venezuela Standard Time",
    "Cuiaba": "Central Brazilian Standard Time",
    "Georgetown, La Paz, Manaus, San Juan": "SA Western Standard Time",
    "Georgetown, La Paz, San Juan": "SA Western Standard Time",
    "Santiago": "Pacific SA Standard Time",
    "Newfoundland": "Newfoundland Standard Time",
    "Araguaina": "Tocantins Standard Time",
    "Brasilia": "E. South America Standard Time",
    "Cayenne, Fortaleza": "SA Eastern Standard Time",
    "City of Buenos Aires": "Argentina Standard Time",
    "Buenos Aires": "Argentina Standard Time",
    "Greenland": "Greenland Standard Time",
    "Montevideo": "Montevideo Standard Time",
    "Punta Arenas": "Magallanes Standard Time",
    "Saint Pierre and Miquelon": "Saint Pierre Standard Time",
    "Salvador": "Bahia Standard Time",
    "Coordinated Universal Time-02": "UTC-02",
    "Mid-Atlantic - Old": "UTC-02",
    "Azores": "Azores Standard Time",
    "Cabo Verde Is.": "Cape Verde Standard Time",
    "Cape Verde Is.": "Cape Verde Standard Time",
    "Coordinated Universal Time": "UTC",
    "Dublin, Edinburgh, Lisbon, London": "GMT Standard Time",
    "Greenwich Mean Time : Dublin, Edinburgh, Lisbon, London": "GMT Standard Time",
    "Monrovia, Reykjavik": "Greenwich Standard Time",
    "Casablanca, Monrovia, Reykjavik": "Greenwich Standard Time",
    "Sao Tome": "Sao Tome Standard Time",
    "Casablanca": "Morocco Standard Time",
    "Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna": "W. Europe Standard Time",
    "Belgrade, Bratislava, Budapest, Ljubljana, Prague": "Central Europe Standard Time",
    "Brussels, Copenhagen, Madrid, Paris": "Romance Standard Time",
    "Sarajevo, Skopje, Warsaw, Zagreb": "Central European Standard Time",
    "West Central Africa": "W. Central Africa Standard Time",
    "Amman": "Jordan Standard Time",
    "Athens, Bucharest": "GTB Standard Time",
    "Athens, Bucharest, Istanbul": "GTB Standard Time",
    "Beirut": "Middle East Standard Time",
    "Cairo": "Egypt Standard Time",
    "Chisinau": "E. Europe Standard Time",
    "Damascus": "Syria Standard Time",
    "Gaza, Hebron": "West Bank Standard Time",
    "Harare, Pretoria": "South Africa Standard Time",
    "Helsinki, Kyiv, Riga, Sofia, Tallinn, Vilnius": "FLE Standard Time",
    "Helsinki, Kiev, Riga, Sofia, Tallinn, Vilnius": "FLE Standard Time",
    "Jerusalem": "Israel Standard Time",
    "Juba": "South Sudan Standard Time",
    "Kaliningrad": "Kaliningrad Standard Time",
    "Khartoum": "Sudan Standard Time",
    "Tripoli": "Libya Standard Time",
    "Windhoek": "Namibia Standard Time",
    "Baghdad": "Arabic Standard Time",
    "Istanbul": "Turkey Standard Time",
    "Kuwait, Riyadh": "Arab Standard Time",
    "Minsk": "Belarus Standard Time",
    "Moscow, St. Petersburg": "Russian Standard Time",
    "Moscow, St. Petersburg, Volgograd": "Russian Standard Time",
    "Nairobi": "E. Africa Standard Time",
    "Volgograd": "Volgograd Standard Time",
    "Tehran": "Iran Standard Time",
    "Abu Dhabi, Muscat": "Arabian Standard Time",
    "Astrakhan, Ulyanovsk": "Astrakhan Standard Time",
    "Baku": "Azerbaijan Standard Time",
    "Izhevsk, Samara": "Russia Time Zone 3",
    "Port Louis": "Mauritius Standard Time",
    "Saratov": "Saratov Standard Time",
    "Tbilisi": "Georgian Standard Time",
    "Yerevan": "Caucasus Standard Time",
    "Kabul": "Afghanistan Standard Time",
    "Ashgabat, Tashkent": "West Asia Standard Time",
    "Astana": "Qyzylorda Standard Time",
    "Ekaterinburg": "Ekaterinburg Standard Time",
    "Islamabad, Karachi": "Pakistan Standard Time",
    "Qyzylorda": "Qyzylorda Standard Time",
    "Chennai, Kolkata, Mumbai, New Delhi": "India Standard Time",
    "Sri Jayawardenepura": "Sri Lanka Standard Time",
    "Kathmandu": "Nepal Standard Time",
    "Bishkek": "Central Asia Standard Time",
    "Dhaka": "Bangladesh Standard Time",
    "Omsk": "Omsk Standard Time",
    "Yangon (Rangoon)": "Myanmar Standard Time",
    "Bangkok, Hanoi, Jakarta": "SE Asia Standard Time",
    "Barnaul, Gorno-Altaysk": "Altai Standard Time",
    "Hovd": "W. Mongolia Standard Time",
    "Krasnoyarsk": "North Asia Standard Time",
    "Novosibirsk": "N. Central Asia Standard Time",
    "Tomsk": "Tomsk Standard Time",
    "Beijing, Chongqing, Hong Kong, Urumqi": "China Standard Time",
    "Beijing, Chongqing, Hong Kong SAR, Urumqi": "China Standard Time",
    "Irkutsk": "North Asia East Standard Time",
    "Kuala Lumpur, Singapore": "Singapore Standard Time",
    "Perth": "W. Australia Standard Time",
    "Taipei": "Taipei Standard Time",
    "Ulaanbaatar": "Ulaanbaatar Standard Time",
    "Eucla": "Aus Central W. Standard Time",
    "Chita": "Transbaikal Standard Time",
    "Osaka, Sapporo, Tokyo": "Tokyo Standard Time",
    "Pyongyang": "North Korea Standard Time",
    "Seoul": "Korea Standard Time",
    "Yakutsk": "Yakutsk Standard Time",
    "Adelaide": "Cen. Australia Standard Time",
    "Darwin": "AUS Central Standard Time",
    "Brisbane": "E. Australia Standard Time",
    "Canberra, Melbourne, Sydney": "AUS Eastern Standard Time",
    "Guam, Port Moresby": "West Pacific Standard Time",
    "Hobart": "Tasmania Standard Time",
    "Vladivostok": "Vladivostok Standard Time",
    "Lord Howe Island": "Lord Howe Standard Time",
    "Bougainville Island": "Bougainville Standard Time",
    "Chokurdakh": "Russia Time Zone 10",
    "Magadan": "Magadan Standard Time",
    "Norfolk Island": "Norfolk Standard Time",
    "Sakhalin": "Sakhalin Standard Time",
    "Solomon Is., New Caledonia": "Central Pacific Standard Time",
    "Anadyr, Petropavlovsk-Kamchatsky": "Russia Time Zone 11",
    "Auckland, Wellington": "New Zealand Standard Time",
    "Coordinated Universal Time+12": "UTC+12",
    "Fiji": "Fiji Standard Time",
    "Fiji, Kamchatka, Marshall Is.": "Fiji Standard Time",
    "Chatham Islands": "Chatham Islands Standard Time",
    "Coordinated Universal Time+13": "UTC+13",
    "Nuku'alofa": "Tonga Standard Time",
    "Samoa": "Samoa Standard Time",
    "Kiritimati Island": "Line Islands Standard Time",
}

# "(UTC-05:00) ", "(GMT-05.00) ", "(UTC) ", "(GMT) " at the start of a display name.
_OFFSET_PREFIX = re.compile(r"^\((?:UTC|GMT)(?:\s*[+-]\s*\d{1,2}(?:[:.]\d{2})?)?\)\s*", re.I)


def _key(name: str) -> str:
    """Spacing, case, "&amp;" and Zimbra's slashes ("Amsterdam / Berlin / ...") don't matter."""
    name = name.replace("&amp;", "&").replace(" / ", ", ")
    return re.sub(r"\s*,\s*", ", ", " ".join(name.split())).casefold()


_BY_DISPLAY = {_key(name): windows_id for name, windows_id in DISPLAY_NAMES.items()}
_BY_WINDOWS_ID = {_key(windows_id): iana for windows_id, iana in win_tz.items()}


@cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def iana_zone(tzid: str) -> str | None:
    """The IANA zone a calendar file's TZID means, or None when it is not one Coachbook knows.

    Accepts IANA names (also Mozilla/Thunderbird's ``/mozilla.org/20050126_1/Europe/Berlin``
    style prefixes and other ``/prefix/Area/City`` forms), Windows IDs and Windows display names.
    """
    name = tzid.strip().strip('"').strip()
    if not name:
        return None
    if name in _iana_names():
        return name
    # "/mozilla.org/20070129_1/Europe/London", "/softwarestudio.org/Olson_20011030_5/America/…"
    parts = [part for part in name.split("/") if part]
    for i in range(len(parts)):
        candidate = "/".join(parts[i:])
        if "/" in candidate and candidate in _iana_names():
            return candidate
    if (found := _BY_WINDOWS_ID.get(_key(name))) is not None:
        return found
    bare = _OFFSET_PREFIX.sub("", name)
    windows_id = _BY_DISPLAY.get(_key(bare))
    if windows_id is None and bare != name and not bare:
        windows_id = "UTC"  # "(UTC)" alone
    if windows_id is not None:
        return win_tz.get(windows_id)
    return None


def zone(tzid: str) -> ZoneInfo | None:
    """`iana_zone` as a ZoneInfo."""
    found = iana_zone(tzid)
    return ZoneInfo(found) if found else None
