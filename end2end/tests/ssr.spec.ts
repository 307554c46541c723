import { expect, test } from "@playwright/test";
import { BoardPage, createViaApi, registerUser, unique } from "./board-page";

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the server-rendered page lists the tasks", async ({ page, request }) => {
    const user = await registerUser(request, "ssr");
    const title = unique("Rendered on the server");
    await createViaApi(request, user, title, "no script needed");
    const board = new BoardPage(page);
    await board.goto();
    await expect(board.column("todo")).toContainText(title);
    await expect(board.card(title)).toContainText("no script needed");
    await expect(board.card(title)).toContainText(`by ${user.username}`);
    await expect(board.app).toHaveAttribute("data-hydrated", "false");
    // Rendered signed out: writing is disabled and says why, and the
    // sign-in form stays inert until the script runs.
    await expect(board.submit).toBeDisabled();
    await expect(page.getByTestId("signin-hint")).toBeVisible();
    await expect(board.username).toBeDisabled();
  });
});
