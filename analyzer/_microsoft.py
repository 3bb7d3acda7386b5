"""Exchange Online address ranges (Microsoft 365 worldwide endpoints, Exchange Online service
area: the ranges EOP sends from and receives on). Used to class a client IP as ``microsoft``.

Source: the Microsoft 365 URLs and IP address ranges list (worldwide instance), as published in
natecohen/m365 worldwide Exchange CIDR list (CC0). Update from
https://endpoints.office.com/endpoints/worldwide when Microsoft changes it.
"""

EXCHANGE_ONLINE: tuple[str, ...] = (
    "2603:1006::/40",
    "2603:1016::/36",
    "2603:1026::/36",
    "2603:1036::/36",
    "2603:1046::/36",
    "2603:1056::/36",
    "2620:1ec:4::152/128",
    "2620:1ec:4::153/128",
    "2620:1ec:c::10/128",
    "2620:1ec:c::11/128",
    "2620:1ec:d::10/128",
    "2620:1ec:d::11/128",
    "2620:1ec:8f0::/46",
    "2620:1ec:900::/46",
    "2620:1ec:a92::152/128",
    "2620:1ec:a92::153/128",
    "2a01:111:f400::/48",
    "2a01:111:f403::/48",
    "13.107.6.152/31",
    "13.107.18.10/31",
    "13.107.128.0/22",
    "23.103.160.0/20",
    "40.92.0.0/15",
    "40.96.0.0/13",
    "40.104.0.0/15",
    "40.107.0.0/16",
    "52.96.0.0/14",
    "52.100.0.0/14",
    "52.238.78.88/32",
    "104.47.0.0/17",
    "131.253.33.215/32",
    "132.245.0.0/16",
    "150.171.32.0/22",
    "204.79.197.215/32",
)
