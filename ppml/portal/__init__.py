"""The customer's portal (``python -m ppml portal``): a web form on the customer's own machine.

A person types a record (or uploads a CSV of them) and reads the prediction on the page. The
portal encrypts with the customer's key, sends ciphertexts only to the company's service and
decrypts the answer, through the same stage layer as the three scripts. :mod:`.predict` does
the work, :mod:`.form` builds the form from the model, :mod:`.histogram` draws the batch's
predictions, :mod:`.app` is the ASGI app.
"""
