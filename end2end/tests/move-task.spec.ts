import { expect, test } from "@playwright/test";
import { BoardPage, createViaApi, unique } from "./board-page";

test("a card moves across the columns and can be deleted", async ({ page, request }) => {
  const title = unique("Review the pull request");
  await createViaApi(request, title);
  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();

  await board.card(title).getByTestId("move-forward").click();
  await expect(board.column("doing")).toContainText(title);
  await expect(board.column("todo")).not.toContainText(title);

  await board.card(title).getByTestId("move-forward").click();
  await expect(board.column("done")).toContainText(title);

  // The change was stored: a fresh load shows it in Done.
  await page.reload();
  await board.waitForHydration();
  await expect(board.column("done")).toContainText(title);

  await board.card(title).getByTestId("delete-task").click();
  await expect(board.card(title)).toHaveCount(0);
  const list = await (await request.get("/tasks")).json();
  expect(list.map((t: { title: string }) => t.title)).not.toContain(title);
});
