// Listen buttons: the window's audio, rebuilt by the server from the frames topic.
"use strict";

document.addEventListener("click", async function (e) {
  const button = e.target.closest("button.listen");
  if (!button) return;
  let audio = button.parentElement.querySelector("audio");
  if (audio) {
    if (audio.paused) audio.play(); else audio.pause();
    return;
  }
  audio = document.createElement("audio");
  audio.controls = true;
  audio.preload = "auto";
  audio.addEventListener("error", async function () {
    const reply = await fetch(button.dataset.src);
    const note = document.createElement("span");
    note.className = "listen-error";
    note.textContent = reply.ok ? "cannot play this audio" : (await reply.text()).trim();
    audio.replaceWith(note);
  });
  audio.src = button.dataset.src;
  button.after(audio);
  audio.play().catch(function () { /* autoplay refused: the controls are there */ });
});
