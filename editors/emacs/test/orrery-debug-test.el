;;; orrery-debug-test.el --- ERT tests of orrery-debug.el  -*- lexical-binding: t; -*-

;;; Commentary:

;; Registration with dap-mode (Debian's elpa-dap-mode) and dape (simulated:
;; dape is not packaged for Debian), and the step-back commands against
;; stand-in sessions.  The end-to-end test (a dap-mode session of `orrery dap'
;; hits a breakpoint and `orrery-step-back' lands on the earlier line) runs
;; only with ORRERY_TEST_DAP=1, once the debugger has landed.

;;; Code:

(require 'orrery-test-helpers)
(require 'orrery)
(require 'orrery-debug)

(defvar dape-configs)

(ert-deftest orrery-debug-0-dap-mode-registration ()
  "Loading dap-mode registers Orrery's debug provider and templates."
  (require 'dap-mode)
  (should (featurep 'orrery-debug))
  (should (eq (gethash "orrery" dap--debug-providers) #'orrery-dap-provider))
  (let ((attach (cdr (assoc "Orrery: attach to node" dap-debug-template-configurations)))
        (launch (cdr (assoc "Orrery: launch the app" dap-debug-template-configurations))))
    (should (equal (plist-get attach :type) "orrery"))
    (should (equal (plist-get attach :request) "attach"))
    (should (equal (plist-get launch :type) "orrery"))
    (should (equal (plist-get launch :request) "launch")))
  (let* ((orrery-executable "/opt/o/orrery")
         (orrery-node "kv@host")
         (orrery-cookie-file "/tmp/kv-cookie")
         (orrery-debug-record t)
         (orrery-debug-record-limit 5000)
         (conf (orrery-dap-provider
                (copy-sequence (cdr (assoc "Orrery: attach to node"
                                           dap-debug-template-configurations))))))
    (should (equal (plist-get conf :dap-server-path) '("/opt/o/orrery" "dap")))
    (should (equal (plist-get conf :type) "orrery"))
    (should (equal (plist-get conf :request) "attach"))
    (should (equal (plist-get conf :node) "kv@host"))
    (should (equal (plist-get conf :cookieFile) "/tmp/kv-cookie"))
    (should (eq (plist-get conf :record) t))
    (should (eq (plist-get conf :recordLimit) 5000))
    (should (stringp (plist-get conf :cwd)))
    ;; What the template sets wins over the defaults.
    (should (equal (plist-get (orrery-dap-provider '(:type "orrery" :node "other@h"))
                              :node)
                   "other@h"))
    ;; A launch starts the app: no node.
    (let ((conf (orrery-dap-provider '(:type "orrery" :request "launch"))))
      (should (equal (plist-get conf :request) "launch"))
      (should-not (plist-member conf :node))
      (should (equal (plist-get conf :dap-server-path) '("/opt/o/orrery" "dap"))))))

(ert-deftest orrery-debug-0-dape-registration ()
  "Loading dape adds Orrery's configurations to `dape-configs'."
  (let ((dape-configs nil))
    (orrery-dape-register)
    (dolist (name '(orrery orrery-launch))
      (let ((config (alist-get name dape-configs)))
        (should config)
        (should (memq 'elixir-mode (plist-get config 'modes)))
        (should (memq 'elixir-ts-mode (plist-get config 'modes)))
        (should (equal (plist-get config 'command-args) '("dap")))
        (should (equal (plist-get config :type) "orrery"))
        (should (member (plist-get config :request) '("attach" "launch")))
        (let ((orrery-executable "/opt/o/orrery"))
          (should (equal (funcall (plist-get config 'command)) "/opt/o/orrery")))
        (let ((orrery-node "kv@host") (orrery-cookie-file nil))
          (let ((filled (funcall (plist-get config 'fn) (copy-sequence config))))
            (should (equal (plist-get filled :node)
                           (and (eq name 'orrery) "kv@host")))
            (should-not (plist-member filled :cookieFile))
            (should (plist-member filled :record))
            (should (plist-get filled :cwd))))))
    (should (equal (plist-get (alist-get 'orrery dape-configs) :request) "attach"))
    (should (equal (plist-get (alist-get 'orrery-launch dape-configs) :request) "launch")))
  ;; When dape loads after orrery, registration happens by itself.
  (unless (featurep 'dape)
    (defvar dape-configs nil)
    (setq dape-configs nil)
    (provide 'dape)
    (should (alist-get 'orrery dape-configs))))

(ert-deftest orrery-debug-1-step-back-dap-mode ()
  "In a stopped dap-mode session, the commands send stepBack / reverseContinue."
  (require 'dap-mode)
  (let* ((caps (make-hash-table :test 'equal))
         (session (make-dap--debug-session :name "orrery test" :thread-id 7
                                           :state 'running
                                           :current-capabilities caps))
         sent resumed)
    (puthash "supportsStepBack" t caps)
    (cl-letf (((symbol-function 'orrery-debug--dape-connection) #'ignore)
              ((symbol-function 'dap--cur-session) (lambda () session))
              ((symbol-function 'dap--send-message)
               (lambda (message _callback s) (push (cons message s) sent)))
              ((symbol-function 'dap--resume-application)
               (lambda (s) (push s resumed))))
      (orrery-step-back)
      (orrery-reverse-continue)
      (should (equal (mapcar (lambda (m) (plist-get (car m) :command)) (reverse sent))
                     '("stepBack" "reverseContinue")))
      (dolist (m sent)
        (should (eq (cdr m) session))
        (should (equal (plist-get (car m) :arguments) '(:threadId 7))))
      (should (equal resumed (list session session)))
      ;; An adapter that cannot step back gets a clear message, nothing is sent.
      (setq sent nil)
      (remhash "supportsStepBack" caps)
      (should-error (orrery-step-back) :type 'user-error)
      (should-not sent))))

(ert-deftest orrery-debug-1-step-back-dape ()
  "In a stopped dape session, the commands send stepBack / reverseContinue."
  (let (sent)
    (cl-letf (((symbol-function 'dape--live-connection)
               (lambda (type &rest _) (and (eq type 'stopped) 'conn)))
              ((symbol-function 'dape--capable-p)
               (lambda (_conn what) (eq what :supportsStepBack)))
              ((symbol-function 'dape--next-like-command)
               (lambda (conn command) (push (list conn command) sent))))
      (orrery-step-back)
      (orrery-reverse-continue)
      (should (equal (reverse sent) '((conn "stepBack") (conn "reverseContinue")))))))

(ert-deftest orrery-debug-1-no-session ()
  "Without a stopped session the commands say so."
  (cl-letf (((symbol-function 'orrery-debug--dape-connection) #'ignore)
            ((symbol-function 'orrery-debug--dap-session) #'ignore))
    (should-error (orrery-step-back) :type 'user-error)
    (should-error (orrery-reverse-continue) :type 'user-error)))

;;;; End to end (ORRERY_TEST_DAP=1)

(defvar dap-breakpoints-file)
(declare-function dap--debug-session-thread-id "ext:dap-mode" (session) t)
(defvar dap-stopped-hook)
(declare-function dap-debug "ext:dap-mode" (debug-args))
(declare-function dap-breakpoint-add "ext:dap-mode" ())
(declare-function dap-disconnect "ext:dap-mode" (session))
(declare-function dap--cur-session "ext:dap-mode" ())
(declare-function dap--debug-session-active-frame "ext:dap-mode" (session) t)
(declare-function dap--debug-session-state "ext:dap-mode" (session) t)
(declare-function dap--debug-session-error-message "ext:dap-mode" (session) t)

(defun orrery-debug-test--frame-line ()
  "Return the line of the active frame of the current dap-mode session.
Fail the test at once if the session failed or ended."
  (let* ((session (dap--cur-session))
         (frame (and session (dap--debug-session-active-frame session))))
    (when (and session (memq (dap--debug-session-state session) '(failed terminated)))
      (ert-fail (format "the debug session %s: %s"
                        (dap--debug-session-state session)
                        (dap--debug-session-error-message session))))
    (and (hash-table-p frame) (gethash "line" frame))))

(ert-deftest orrery-debug-2-dap-mode-step-back ()
  "A dap-mode session of `orrery dap' hits a breakpoint; stepping back lands earlier.
KV.Client.store_and_twice/1 runs line 15 then line 16 (lib/kv/client.ex);
with a breakpoint on line 16, `orrery-step-back' must land on line 15."
  (unless (equal (getenv "ORRERY_TEST_DAP") "1")
    (message "orrery-debug-2-dap-mode-step-back: skipped, set ORRERY_TEST_DAP=1 \
to run it (once `orrery dap' has landed)")
    (ert-skip "set ORRERY_TEST_DAP=1 to run the debugger test"))
  (orrery-test-require-node)
  (require 'dap-mode)
  (let* ((dap-breakpoints-file (make-temp-file "orrery-dap-breakpoints"))
         (orrery-executable orrery-test-bin)
         (orrery-node orrery-test-node)
         (orrery-cookie-file orrery-test-cookie-file)
         (file (expand-file-name "lib/kv/client.ex" orrery-test-fixture))
         (buf (find-file-noselect file))
         trigger
         (orrery-test-diagnostics
          (lambda ()
            (format "trigger: %s\nsession: %s"
                    (with-current-buffer (get-buffer-create " *orrery-dap-trigger*")
                      (buffer-string))
                    (let ((s (dap--cur-session)))
                      (and s (list (dap--debug-session-state s)
                                   (dap--debug-session-thread-id s))))))))
    (unwind-protect
        (progn
          (with-current-buffer buf
            (goto-char (point-min))
            (forward-line 15)           ; line 16: Calc.Helpers.twice(v)
            (should (looking-at-p "[ \t]*Calc.Helpers.twice"))
            (dap-breakpoint-add)
            (dap-debug (list :type "orrery" :request "attach" :name "orrery ert"
                             :node orrery-test-node
                             :cookie (orrery-test-cookie)
                             :cwd orrery-test-fixture
                             :record t)))
          ;; dap-mode marks the session running once configurationDone is answered,
          ;; that is after setBreakpoints.
          (orrery-test-wait "the dap-mode session to be configured" 60
                            (lambda ()
                              (let ((s (dap--cur-session)))
                                (and s (eq (dap--debug-session-state s) 'running)))))
          ;; Run the code from another node; it blocks at the breakpoint.
          (setq trigger
                (make-process
                 :name "orrery-dap-trigger" :noquery t
                 :buffer (get-buffer-create " *orrery-dap-trigger*")
                 :command (list "elixir" "--sname"
                                (format "orrery_dap_%d" (random 1000000000))
                                "--cookie" (orrery-test-cookie) "--hidden" "-e"
                                (format "IO.inspect(:rpc.call(:\"%s\", KV.Client, :store_and_twice, [2]))"
                                        orrery-test-node))))
          (orrery-test-wait "the breakpoint on line 16 to be hit" 60
                            (lambda () (eql (orrery-debug-test--frame-line) 16)))
          (orrery-step-back)
          (orrery-test-wait "step back to land on line 15" 60
                            (lambda () (eql (orrery-debug-test--frame-line) 15))))
      (ignore-errors (dap-disconnect (dap--cur-session)))
      (when (and trigger (process-live-p trigger)) (delete-process trigger))
      (delete-file dap-breakpoints-file))))

(provide 'orrery-debug-test)
;;; orrery-debug-test.el ends here
