"""Customer, step 1: encrypt laptop records with the customer's public key. See README.md."""
from ppml.cli.encrypt import encrypt_command

if __name__ == "__main__":
    encrypt_command(prog_name="CustomerEncrypts.py")
