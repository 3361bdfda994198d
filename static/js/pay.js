// The card form of the payment page: Stripe.js' card element makes a token, the server
// confirms the payment with it, and confirmCardPayment completes a 3-D Secure step when the
// bank asks for one. Then the return page asks Stripe for the outcome.
(function () {
  "use strict";
  var form = document.querySelector("form[data-card-form]");
  if (!form || typeof window.Stripe !== "function") {
    var errors = document.getElementById("card-errors");
    if (form && errors) {
      errors.textContent = "The card form could not load. Check your connection and reload the page.";
    }
    return;
  }
  var stripe = window.Stripe(form.getAttribute("data-stripe-key"));
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var button = document.getElementById("pay-button");
  var errorBox = document.getElementById("card-errors");
  var busyLabel = "Paying…";
  var idleLabel = button.textContent;

  function fail(message) {
    errorBox.textContent = message;
    button.disabled = false;
    button.textContent = idleLabel;
  }

  function post(token) {
    var body = new URLSearchParams();
    body.append("card_token", token);
    body.append("csrfmiddlewaretoken", form.querySelector("input[name=csrfmiddlewaretoken]").value);
    return fetch(form.getAttribute("action"), {
      method: "POST",
      headers: {"Content-Type": "application/x-www-form-urlencoded", "X-Requested-With": "fetch"},
      body: body.toString(),
      credentials: "same-origin",
    }).then(function (response) {
      return response.json().catch(function () {
        return {state: "error", message: "The payment could not be sent. Try again."};
      });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (button.disabled) {
      return;
    }
    errorBox.textContent = "";
    button.disabled = true;
    button.textContent = busyLabel;
    stripe.createToken(card).then(function (result) {
      if (result.error || !result.token) {
        throw {message: (result.error && result.error.message) || "Check your card details."};
      }
      return post(result.token.id);
    }).then(function (answer) {
      if (answer.state === "paid" || answer.state === "pending") {
        window.location.assign(answer.next);
      } else if (answer.state === "action") {
        return stripe.confirmCardPayment(answer.client_secret).then(function () {
          // Success or not, the return page asks Stripe and says what happened.
          window.location.assign(answer.next);
        });
      } else {
        fail(answer.message || "The payment did not go through. Try again.");
      }
    }).catch(function (error) {
      fail((error && error.message) || "The payment could not be sent. Try again.");
    });
  });
})();
