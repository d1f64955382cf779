;;; orrery-test.el --- ERT tests of orrery.el, against a real node  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by ../test.sh on Emacs 28 (elpa-eglot 1.9) and Emacs 30 (eglot 1.17):
;;   emacs --batch -L .. -L . -l orrery-test -f ert-run-tests-batch-and-exit
;; Tests run in name order: the orrery-0-* ones need no node; the
;; orrery-live-* ones share one eglot connection to the kv fixture node and
;; are numbered in the order they must run (later ones change the node's state).

;;; Code:

(require 'orrery-test-helpers)
;; These tests run Orrery as eglot's server (the way for those who want Orrery
;; alone); orrery-coexist-test.el runs it beside another server.
(defvar orrery-client)
(setq orrery-client 'eglot)
(require 'orrery)
(require 'json)

(defvar eglot-lsp-context)              ; Special only inside eglot.el in 1.9.

;;;; Without a node

(ert-deftest orrery-0-registration ()
  "Eglot runs `orrery lsp' for elixir-mode, elixir-ts-mode and the fallback mode."
  (dolist (mode '(elixir-mode elixir-ts-mode orrery-elixir-mode))
    (let ((entry (cl-find-if
                  (lambda (e)
                    (let ((modes (if (listp (car e)) (car e) (list (car e)))))
                      (cl-some (lambda (m) (eq (if (consp m) (car m) m) mode))
                               modes)))
                  eglot-server-programs)))
      (should entry)
      (should (eq (cdr entry) #'orrery-eglot-contact))))
  (let ((orrery-executable "/opt/x/orrery"))
    (should (equal (orrery-eglot-contact) '(orrery-eglot-server "/opt/x/orrery" "lsp")))))

(ert-deftest orrery-0-fallback-mode ()
  "Without another Elixir mode, .ex and .exs files open in `orrery-elixir-mode'."
  (if (orrery--elixir-mode-available-p)
      (should-not (eq (assoc-default "x.ex" auto-mode-alist #'string-match)
                      'orrery-elixir-mode))
    (should (eq (assoc-default "/a/x.ex" auto-mode-alist #'string-match)
                'orrery-elixir-mode))
    (should (eq (assoc-default "/a/x.exs" auto-mode-alist #'string-match)
                'orrery-elixir-mode)))
  (with-temp-buffer
    (insert "defmodule A do\n  # hi\n  def f(x), do: x\nend\n")
    (orrery-elixir-mode)
    (should (equal comment-start "# "))
    (goto-char (point-min))
    (search-forward "hi")
    (should (nth 4 (syntax-ppss)))))

(ert-deftest orrery-0-settings ()
  "The customizations become Orrery's initializationOptions."
  (let ((orrery-node "kv@host")
        (orrery-cookie-file "/tmp/c")
        (orrery-allow-writes nil)
        (orrery-refresh-ms 500)
        (orrery-attach-peers 'default)
        (orrery-inlay-hints '(calls ets)))
    (let ((s (orrery-settings)))
      (should (equal (plist-get s :node) "kv@host"))
      (should (equal (plist-get s :cookieFile) "/tmp/c"))
      (should (eq (plist-get s :allowWrites) :json-false))
      (should (eq (plist-get s :refreshMs) 500))
      (should-not (plist-member s :attachPeers))
      (should (equal (plist-get s :inlayHints)
                     '(:calls t :processes :json-false :ets t)))
      ;; What eglot sends.
      (should (string-match-p "\"allowWrites\":false"
                              (json-serialize s :false-object :json-false)))))
  (let ((orrery-node nil) (orrery-cookie-file nil) (orrery-allow-writes 'default)
        (orrery-refresh-ms nil) (orrery-attach-peers nil))
    (should-not (plist-member (orrery-settings) :node))
    (should-not (plist-member (orrery-settings) :allowWrites))
    (should (eq (plist-get (orrery-settings) :attachPeers) :json-false))))

(ert-deftest orrery-0-mix-root ()
  "The project root is the outermost mix project, not the git repository."
  (should (equal (file-name-as-directory
                  (orrery--mix-root (expand-file-name "lib/kv/" orrery-test-fixture)))
                 orrery-test-fixture))
  (with-current-buffer (find-file-noselect
                        (expand-file-name "lib/kv/bucket.ex" orrery-test-fixture))
    (let ((eglot-lsp-context t))
      (should (equal (file-name-as-directory (project-root (project-current)))
                     orrery-test-fixture)))))

(ert-deftest orrery-0-module-at-point ()
  "Commands default to the module at point, else the enclosing module."
  (with-temp-buffer
    (insert "defmodule KV.Client do\n  def f, do: KV.Bucket.get(:x)\nend\n")
    (orrery-elixir-mode)
    (goto-char (point-min))
    (search-forward "KV.Buc")
    (should (equal (orrery-module-at-point) "KV.Bucket"))
    (search-forward "get(")
    (should (equal (orrery-module-at-point) "KV.Client"))))

;;;; Against the node

(defvar orrery-test--buffer nil
  "The fixture buffer managed by eglot with Orrery, once connected.")

(defun orrery-test--server ()
  "Return the Orrery server of the fixture buffer."
  (with-current-buffer orrery-test--buffer (eglot-current-server)))

(defun orrery-test-live-buffer ()
  "Return lib/kv/bucket.ex of the fixture, managed by eglot with Orrery.
The first call connects; the next ones reuse the connection."
  (orrery-test-require-node)
  (unless (and orrery-test--buffer (buffer-live-p orrery-test--buffer)
               (orrery--server-p (orrery-test--server)))
    (setq orrery-executable orrery-test-bin
          orrery-node orrery-test-node
          orrery-cookie-file orrery-test-cookie-file
          ;; Only the server's refresh requests refresh; `orrery-live-8-timer'
          ;; tests the timer on its own.
          orrery-refresh-interval nil
          eglot-sync-connect 30)
    (let ((buf (find-file-noselect (expand-file-name "lib/kv/bucket.ex"
                                                     orrery-test-fixture))))
      (with-current-buffer buf
        (apply #'eglot (eglot--guess-contact))
        (orrery-test-wait "eglot to manage bucket.ex with Orrery" 30
                          (lambda () (and (bound-and-true-p eglot--managed-mode)
                                          orrery-live-mode))))
      (setq orrery-test--buffer buf)))
  ;; Show it, as a user would: eglot's inlay hints are for what is displayed.
  ;; (ERT restores the window configuration after each test.)
  (switch-to-buffer orrery-test--buffer)
  orrery-test--buffer)

(defun orrery-test--diagnostics ()
  "Return the fixture buffer's live overlays and the end of eglot's event log."
  (if (not (buffer-live-p orrery-test--buffer))
      "no fixture buffer"
    (with-current-buffer orrery-test--buffer
      (let ((server (eglot-current-server)))
        (concat
         (format "orrery-live-mode: %s, in flight: %S\noverlays:\n%s\n"
                 orrery-live-mode orrery--inflight
                 (mapconcat
                  (lambda (o)
                    (format "  %s %S" (line-number-at-pos (overlay-start o))
                            (or (overlay-get o 'orrery-text)
                                (overlay-get o 'after-string)
                                (overlay-get o 'before-string))))
                  (overlays-in (point-min) (point-max)) "\n"))
         (if (not server) "no server"
           (with-current-buffer (jsonrpc-events-buffer server)
             (buffer-substring-no-properties
              (save-excursion (goto-char (point-max)) (forward-line -60) (point))
              (point-max)))))))))

(setq orrery-test-diagnostics #'orrery-test--diagnostics)

(add-hook 'kill-emacs-hook
          (lambda () (ignore-errors (eglot-shutdown-all))))

(defun orrery-test--line-overlays (line prop)
  "Return the texts of overlays with PROP on LINE (1-based) of the buffer."
  (save-excursion
    (goto-char (point-min))
    (forward-line (1- line))
    (delq nil
          (mapcar (lambda (o)
                    (when (overlay-get o prop)
                      (substring-no-properties
                       (or (overlay-get o 'after-string)
                           (overlay-get o 'before-string) ""))))
                  (overlays-in (line-beginning-position)
                               (min (point-max) (1+ (line-end-position))))))))

(defun orrery-test--hint-prop ()
  "Return the overlay property marking inlay hints in this Emacs."
  (if (orrery--own-hints-p) 'orrery-hint 'eglot--inlay-hint))

(defun orrery-test--hint-on (line regexp)
  "Return the inlay hint on LINE matching REGEXP, or nil."
  (cl-find-if (lambda (s) (string-match-p regexp s))
              (orrery-test--line-overlays line (orrery-test--hint-prop))))

(ert-deftest orrery-live-1-connect ()
  "Eglot connects to `orrery lsp' with the node configured."
  (with-current-buffer (orrery-test-live-buffer)
    (let ((server (eglot-current-server)))
      (should (cl-typep server 'orrery-eglot-server))
      (should (equal (file-name-as-directory (project-root (eglot--project server)))
                     orrery-test-fixture))
      (should (equal (plist-get (eglot-initialization-options server) :node)
                     orrery-test-node))
      (let ((ws (plist-get (eglot-client-capabilities server) :workspace)))
        (should (eq t (plist-get (plist-get ws :codeLens) :refreshSupport)))
        (should (eq t (plist-get (plist-get ws :inlayHint) :refreshSupport))))
      (when (fboundp 'eglot-inlay-hints-mode)
        (should (bound-and-true-p eglot-inlay-hints-mode))))))

(ert-deftest orrery-live-2-status ()
  "`orrery-status' reports the attached node."
  (with-current-buffer (orrery-test-live-buffer)
    (let ((status (orrery-test-wait
                   "Orrery to attach" 60
                   (lambda ()
                     (let ((s (orrery-status)))
                       (and (eq (plist-get s :attached) t) s))))))
      (should (equal (plist-get status :node) orrery-test-node))
      (let ((node (aref (plist-get status :nodes) 0)))
        (should (equal (plist-get node :name) orrery-test-node))
        (should (plist-get node :otp))
        (should (plist-get node :elixir)))
      (should (string-match-p (regexp-quote orrery-test-node)
                              (orrery--describe-status status))))))

(ert-deftest orrery-live-3-hover ()
  "Hover on the module shows the GenServer's live state, %{}."
  (with-current-buffer (orrery-test-live-buffer)
    (goto-char (point-min))
    (search-forward "KV.Buck")
    ;; The LSP request itself...
    (let ((text (orrery-test-wait
                 "hover with the live state" 60
                 (lambda ()
                   (let* ((hover (orrery-request :textDocument/hover
                                                 (eglot--TextDocumentPositionParams)))
                          (value (plist-get (plist-get hover :contents) :value)))
                     (and value (string-match-p "%{}" value) value))))))
      (should (string-match-p "KV.Bucket" text)))
    ;; ...and what eldoc shows, through eglot's own hover function.
    (let (shown)
      (eglot-hover-eldoc-function (lambda (info &rest _) (setq shown (or info ""))))
      (orrery-test-wait "eldoc's hover text" 30 (lambda () shown))
      (should (string-match-p "%{}" shown)))))

(ert-deftest orrery-live-4-lens-overlays ()
  "Overlays above lines show what code lenses would: live process counts."
  (with-current-buffer (orrery-test-live-buffer)
    (let ((text (orrery-test-wait
                 "the \"1 live process\" overlay on line 1" 60
                 (lambda ()
                   (cl-find-if (lambda (s) (string-match-p "1 live process" s))
                               (orrery-test--line-overlays 1 'orrery-lens))))))
      (should (string-match-p "loaded [0-9a-f]\\{8\\}" text))
      (should (string-match-p "Inspect state" text)))
    ;; Call counts above def heads (line 10: def start_link).
    (should (cl-find-if (lambda (s) (string-match-p "[0-9]+ calls?" s))
                        (orrery-test--line-overlays 10 'orrery-lens)))))

(declare-function orrery-debug-test-start "orrery-debug" (config))

(ert-deftest orrery-live-4-debug-test ()
  "In an ExUnit file, `orrery-debug-test-at-point' starts the server's lens config.
The server's \"Debug test\" lens above `test' (line 4 of
test/steps_test.exs) carries `mix test test/steps_test.exs:4'; the
overlays show the lenses."
  (orrery-test-live-buffer)
  ;; Loaded now, so that the stand-in below is not replaced by the autoload.
  (require 'orrery-debug)
  (let ((buf (find-file-noselect (expand-file-name "test/steps_test.exs"
                                                   orrery-test-fixture)))
        started)
    (unwind-protect
        (with-current-buffer buf
          (orrery-test-wait "eglot to manage steps_test.exs with Orrery" 30
                            (lambda () (and (bound-and-true-p eglot--managed-mode)
                                            (orrery--server-p (eglot-current-server))
                                            orrery-live-mode)))
          (orrery-test-wait
           "the \"Debug test\" overlay on line 4" 60
           (lambda ()
             (cl-find-if (lambda (s) (string-match-p "Debug test" s))
                         (orrery-test--line-overlays 4 'orrery-lens))))
          (goto-char (point-min))
          (forward-line 4)              ; line 5: inside the test
          (cl-letf (((symbol-function 'orrery-debug-test-start)
                     (lambda (config) (push config started))))
            (orrery-debug-test-at-point)
            (goto-char (point-min))     ; line 1: the whole file
            (orrery-debug-test-at-point))
          (let ((test (cadr started)) (file (car started)))
            (should (equal (plist-get test :type) "orrery"))
            (should (equal (plist-get test :request) "launch"))
            (should (equal (plist-get test :task) "test"))
            (should (equal (plist-get test :taskArgs) ["test/steps_test.exs:4"]))
            (should (equal (file-name-as-directory (plist-get test :cwd))
                           orrery-test-fixture))
            (should (equal (plist-get file :taskArgs) ["test/steps_test.exs"]))))
      (kill-buffer buf))))

(ert-deftest orrery-live-5-inlay-hints ()
  "An inlay hint after `use GenServer' (line 6) shows \"1 proc\" and the state.
On Emacs 29+ eglot draws it; on Emacs 28 this package does."
  (with-current-buffer (orrery-test-live-buffer)
    (let ((hint (orrery-test-wait "the \"1 proc\" inlay hint on line 6" 60
                                  (lambda () (orrery-test--hint-on 6 "1 proc")))))
      (should (string-match-p "1 proc · %{}" hint)))))

(ert-deftest orrery-live-6-inspect ()
  "`orrery-inspect' shows the full state in a buffer."
  (with-current-buffer (orrery-test-live-buffer)
    (with-current-buffer (orrery-inspect "KV.Bucket")
      (should (derived-mode-p 'orrery-state-mode))
      (should (string-match-p "^%{}$" (buffer-string)))
      (should (string-match-p (regexp-quote orrery-test-node) (buffer-string))))))

(ert-deftest orrery-live-6-processes ()
  "`orrery-processes' lists the node's processes, KV.Bucket among them."
  (with-current-buffer (orrery-test-live-buffer)
    (with-current-buffer (orrery-processes)
      (should (derived-mode-p 'orrery-processes-mode))
      (should (> (length tabulated-list-entries) 10))
      (goto-char (point-min))
      (should (search-forward "KV.Bucket" nil t))
      (should (equal (plist-get (tabulated-list-get-id) :name) "KV.Bucket"))
      (with-current-buffer (orrery-inspect (plist-get (tabulated-list-get-id) :pid))
        (should (string-match-p "%{}" (buffer-string)))))))

(ert-deftest orrery-live-7-rollback ()
  "`orrery-rollback' runs orrery.rollback and shows the server's answer or error."
  (with-current-buffer (orrery-test-live-buffer)
    (condition-case err
        (progn (orrery-rollback "KV.Bucket")
               (message "orrery.rollback is supported by the server"))
      (user-error
       (should (string-match-p "rollback of KV.Bucket failed: ." (cadr err)))
       (message "as expected until rollback lands: %s" (cadr err))))))

(ert-deftest orrery-live-8-refresh-on-change ()
  "When the state changes, the server's refresh requests update what is shown."
  (with-current-buffer (orrery-test-live-buffer)
    (let ((refreshes nil))
      (cl-flet ((count (_server what) (push what refreshes)))
        (advice-add 'orrery--schedule-refresh :before #'count)
        (unwind-protect
            (progn
              (should (equal (orrery-test-rpc "KV.Bucket" "put" "[:emacs, 42]") ":ok"))
              (orrery-test-wait "the hint to show the new state" 60
                                (lambda () (orrery-test--hint-on 6 "emacs: 42")))
              (should (memq 'hints refreshes))
              ;; The server asks for hints, then for lenses.
              (orrery-test-wait "a code lens refresh request" 30
                                (lambda () (memq 'lenses refreshes))))
          (advice-remove 'orrery--schedule-refresh #'count))))
    (goto-char (point-min))
    (search-forward "KV.Buck")
    (should (string-match-p
             "emacs: 42"
             (plist-get (plist-get (orrery-request :textDocument/hover
                                                   (eglot--TextDocumentPositionParams))
                                   :contents)
                        :value)))))

(ert-deftest orrery-live-8-timer ()
  "The refresh timer fetches live values again on its own."
  (with-current-buffer (orrery-test-live-buffer)
    (let ((fetched 0)
          (orrery-refresh-interval 0.2))
      (cl-flet ((count (&rest _) (cl-incf fetched)))
        (advice-add 'orrery--refresh-buffer :before #'count)
        (unwind-protect
            (progn
              (orrery--stop-timer)
              (orrery--start-timer)
              (orrery-test-wait "two timed refreshes" 30 (lambda () (>= fetched 2))))
          (advice-remove 'orrery--refresh-buffer #'count)
          (orrery--stop-timer))))))

(ert-deftest orrery-live-9-attach ()
  "`orrery-attach' reconnects to the given node."
  (with-current-buffer (orrery-test-live-buffer)
    (let ((old (eglot-current-server)))
      (orrery-attach orrery-test-node orrery-test-cookie-file)
      (let ((new (orrery-test-wait "a new Orrery connection" 30
                                   (lambda ()
                                     (let ((s (eglot-current-server)))
                                       (and (orrery--server-p s) (not (eq s old)) s))))))
        (should-not (jsonrpc-running-p old))
        (orrery-test-wait "the new connection to attach" 60
                          (lambda ()
                            (eq t (plist-get (orrery-request :orrery/status nil new)
                                             :attached))))
        (should orrery-live-mode)
        (orrery-test-wait "overlays from the new connection" 60
                          (lambda ()
                            (cl-find-if (lambda (s) (string-match-p "1 live process" s))
                                        (orrery-test--line-overlays 1 'orrery-lens))))))))

(provide 'orrery-test)
;;; orrery-test.el ends here
