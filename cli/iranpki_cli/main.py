"""The `iranpki` command: `iranpki NOUN VERB`.

\b
Example: a root on a SoftHSM2 token, a level-2 intermediate, and an SSL certificate
  export IRANPKI_PKCS11_PIN=...            # never on the command line
  iranpki init ./ca --repository-url http://repo.example.ir --ocsp-url http://ocsp.example.ir
  cd ./ca
  iranpki key generate --token "Root CA" --label root --algorithm rsa4096
  iranpki ca create-root --name root --key 'pkcs11:token=Root%20CA;object=root' \\
      --subject 'C=IR,O=I.R.Government,OU=Root CA,CN=Islamic Republic of Iran Root CA-G3'
  iranpki ca create-intermediate --parent root --level 2 --name gica2 ...
  iranpki cert issue --ca gica2 --profile ssl-server --csr site.csr --out site.pem
  iranpki crl generate --ca gica2 && iranpki crl publish --to /srv/repository
  iranpki ocsp serve --ca gica2 --host 127.0.0.1 --port 8080 --workers 2
  iranpki cps check gica-cps.md --level 2 --artifacts ./samples
"""

from __future__ import annotations

import importlib
import logging

import click

from .handling import HandledGroup

# Each command's module is imported when that command runs, not before: `iranpki --help` and
# `--version` import none of them, and `iranpki cert list` does not load pyHanko (about 1.5 s
# on these machines) for `sign`. The one-line help is written here so that the list needs no
# import either; tests/test_cli.py checks that each entry loads its command.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "Make a workspace: settings, an empty store, a folder for software keys."),
    "token": ("token", "PKCS#11 tokens and HSMs."),
    "key": ("key", "Key pairs on tokens (PKCS#11) or in encrypted software files."),
    "profile": ("profile", "Certificate profiles (profiles/*.yaml)."),
    "ca": ("ca", "Certificate authorities: the root and its intermediates (one per assurance level)."),
    "cert": ("cert", "End-entity certificates: issue, revoke, list, show, export."),
    "crl": ("crl", "Certificate revocation lists (RFC 5280): complete, delta and partitioned CRLs."),
    "ocsp": ("ocsp", "OCSP responder (RFC 6960, RFC 9919 lightweight profile) over HTTP, GET and POST."),
    "tsa": ("tsa", "Time-stamp authority (RFC 3161 with RFC 5816 ESSCertIDv2) over HTTP, and a client."),
    "sign": ("sign", "Sign documents: PDF (PAdES B-B, B-T, B-LT), CMS over any file, S/MIME mail, Windows PE."),
    "verify": ("verify", "Validate a certificate or a signed file as a relying party."),
    "conformance": ("conformance", "The PKCS#11 conformance suite the lab runs against tokens and HSMs."),
    "cps": ("cps", "Certification Practice Statements: check one against the national CP."),
    "ra": ("ra", "Registration offices and officers, the request queue, and the CA side that issues approved requests."),
    "audit": ("audit", "The audit log as a Merkle tree: signed checkpoints, verification, proofs for inspectors."),
    "ldap": ("ldap", "Publishing CA certificates, CRLs and consenting subscribers' certificates to an LDAP directory."),
    "store": ("store", "The workspace's store: SQLite on one machine, PostgreSQL for several (store migrate)."),
    "escrow": ("escrow", "The key-recovery key: subscribers' encryption keys archived by the RA, and their recovery."),
    "ceremony": ("ceremony", "Key ceremonies from one reviewed YAML file: root, intermediates, keys, cross-certificates, ARLs."),
    "portal": ("portal", "The web portals: the public repository, served from the workspace's store."),
}


class LazyRoot(HandledGroup):
    """The root group: commands are imported on first use (see ``COMMANDS``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f".{COMMANDS[name][0]}", __package__)
        return getattr(module, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


@click.group(cls=LazyRoot, help=__doc__,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--verbose", is_flag=True, help="Show the full trace of an error.")
@click.version_option(package_name="iranpki")
def cli(verbose: bool) -> None:
    if not verbose:
        # pyHanko and its validator log each refused path or signature as a warning with a stack
        # trace; the refusal and its reason are the command's own output, so traces need --verbose.
        for name in ("pyhanko", "pyhanko_certvalidator"):
            logging.getLogger(name).setLevel(logging.ERROR)


def main() -> None:
    cli(prog_name="iranpki")


if __name__ == "__main__":
    main()
