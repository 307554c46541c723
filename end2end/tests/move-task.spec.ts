import { expect, test } from "@playwright/test";
import { BoardPage, createViaApi, registerUser, storedTasks, taskWrites, unique } from "./board-page";

test("a card moves across the columns and can be deleted", async ({ page, request }) => {
  const user = await registerUser(request, "mover");
  const title = unique("Review the pull request");
  await createViaApi(request, user, title);
  const board = new BoardPage(page);
  await board.gotoSignedIn(user);

  await board.card(title).getByTestId("move-forward").click();
  await expect(board.column("doing")).toContainText(title);
  await expect(board.column("todo")).not.toContainText(title);

  await board.card(title).getByTestId("move-forward").click();
  await expect(board.column("done")).toContainText(title);

  // The change was stored: a fresh load shows it in Done, still signed in.
  await page.reload();
  await board.waitForHydration();
  await expect(board.column("done")).toContainText(title);
  await expect(board.signedInAs).toContainText(user.username);

  // Deleting asks first, hides the card at once and sends the deletion
  // when the few seconds to undo it are over.
  await board.card(title).getByTestId("delete-task").click();
  await board.card(title).getByTestId("confirm-delete").click();
  await expect(board.card(title)).toHaveCount(0);
  await expect(page.getByTestId("undo-delete")).toContainText(title);
  await expect
    .poll(async () => (await (await request.get("/tasks")).json()).map((t: { title: string }) => t.title), {
      timeout: 10_000,
    })
    .not.toContain(title);
  await expect(page.getByTestId("undo-delete")).toHaveCount(0);
});

test("signed out, the cards cannot be changed", async ({ page, request }) => {
  const user = await registerUser(request);
  const title = unique("Look, don't touch");
  const task = await createViaApi(request, user, title);
  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  await expect(board.card(title)).toBeVisible();
  await expect(board.card(title).getByTestId("move-forward")).toBeDisabled();
  await expect(board.card(title).getByTestId("delete-task")).toBeDisabled();
  await expect(page.getByTestId("signin-hint")).toHaveText("Sign in to add or change tasks");

  // Clicking anyway (past Playwright's own check that they are enabled)
  // sends nothing, and nothing changes on the server.
  const writes = taskWrites(page);
  await board.card(title).getByTestId("move-forward").click({ force: true });
  await board.card(title).getByTestId("delete-task").click({ force: true });
  await board.submit.click({ force: true });
  await writes.settle();
  expect(writes.sent()).toEqual([]);
  await expect(board.column("todo")).toContainText(title);
  const stored = (await storedTasks(request)).find((t) => t.id === task.id);
  expect(stored?.status).toBe("todo");

  // Signed in, the same click sends one PATCH: the log sees these writes,
  // so the empty log above means that nothing was sent.
  await board.signIn(user);
  await board.card(title).getByTestId("move-forward").click();
  await expect(board.column("doing")).toContainText(title);
  expect(writes.targets()).toEqual([`PATCH /tasks/${task.id}`]);
  expect(writes.requests[0].postDataJSON().status).toBe("doing");
});
