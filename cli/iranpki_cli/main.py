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

import logging

import click

from . import ca, cert, conformance, cps, crl, init, key, ocsp, profile, sign, token, tsa, verify
from .common import HandledGroup

@click.group(cls=HandledGroup, help=__doc__,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--verbose", is_flag=True, help="Show the full trace of an error.")
@click.version_option(package_name="iranpki")
def cli(verbose: bool) -> None:
    if not verbose:
        # pyHanko and its validator log each refused path or signature as a warning with a stack
        # trace; the refusal and its reason are the command's own output, so traces need --verbose.
        for name in ("pyhanko", "pyhanko_certvalidator"):
            logging.getLogger(name).setLevel(logging.ERROR)


cli.add_command(init.init)
cli.add_command(token.token)
cli.add_command(key.key)
cli.add_command(profile.profile)
cli.add_command(ca.ca)
cli.add_command(cert.cert)
cli.add_command(crl.crl)
cli.add_command(ocsp.ocsp)
cli.add_command(tsa.tsa)
cli.add_command(sign.sign)
cli.add_command(verify.verify)
cli.add_command(conformance.conformance)
cli.add_command(cps.cps)


def main() -> None:
    cli(prog_name="iranpki")


if __name__ == "__main__":
    main()
