"""Customer, step 3: decrypt the predicted prices with the private key. See README.md."""
from ppml.cli.decrypt import decrypt_command

if __name__ == "__main__":
    decrypt_command(prog_name="CustomerDecrypts.py")
