from passerelle.cli import run

run()
