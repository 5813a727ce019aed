"""Company, step 2: score encrypted records with the model, never seeing them. See README.md."""
from ppml.cli.score import score_command

if __name__ == "__main__":
    score_command(prog_name="ServerModelRun.py")
