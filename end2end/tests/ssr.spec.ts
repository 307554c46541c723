import { expect, test } from "@playwright/test";
import { BoardPage, createViaApi, unique } from "./board-page";

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the server-rendered page lists the tasks", async ({ page, request }) => {
    const title = unique("Rendered on the server");
    await createViaApi(request, title, "no script needed");
    const board = new BoardPage(page);
    await board.goto();
    await expect(board.column("todo")).toContainText(title);
    await expect(board.card(title)).toContainText("no script needed");
    await expect(board.app).toHaveAttribute("data-hydrated", "false");
  });
});
