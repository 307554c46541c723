import { expect, test } from "@playwright/test";
import { BoardPage, createViaApi, registerUser, unique } from "./board-page";

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

  await board.card(title).getByTestId("delete-task").click();
  await expect(board.card(title)).toHaveCount(0);
  const list = await (await request.get("/tasks")).json();
  expect(list.map((t: { title: string }) => t.title)).not.toContain(title);
});

test("signed out, the cards cannot be changed", async ({ page, request }) => {
  const user = await registerUser(request);
  const title = unique("Look, don't touch");
  await createViaApi(request, user, title);
  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  await expect(board.card(title)).toBeVisible();
  await expect(board.card(title).getByTestId("move-forward")).toBeDisabled();
  await expect(board.card(title).getByTestId("delete-task")).toBeDisabled();
  await expect(page.getByTestId("signin-hint")).toHaveText("Sign in to add or change tasks");
});
