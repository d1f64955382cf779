%% Orrery's call counts (the "N calls" hints), loaded with the agent and removed with it.
%% call_count counters live in the loaded code: loading new code of a module starts the
%% new code with no counters at all. So every load Orrery makes goes through load/3 (or
%% delete/1), which first adds the old code's counts to a base per {M, F, A} and switches
%% counting on for the new code right after; a count is base + counter. The base and who
%% counts what sit in the guard's table orrery_guard_v1_counts, so they go with the guard
%% (a vanished Orrery's counting is switched off by the guard: release/1 is its undo step).
%%
%% A load Orrery did not make (someone else reloaded the module) is seen afterwards: the
%% loaded code is not the code counting was switched on for, or has no counters. Those
%% calls are lost: counting starts again from 0 and says since when (since => ms).
%%
%% Old code: after a load, processes still running the old code (a fun of it, a process
%% paused in it) count on the old code's counters, which nothing can read any more (trace
%% info sees the current code only). Those calls are not counted. Orrery's swaps refuse
%% while a process runs in the module, so that is rare.
%%
%% Rows: {{mod, M}, Owners, Since, Exact, Md5} (Md5 nil: not switched on yet, the module
%% was not loaded), {{base, M, F, A}, N}, {{gen, M}, Gen, Busy} (loads in progress; a
%% read retries until it saw no load). Keep this file ASCII only, no macros, no -include.
-module(orrery_counts_v1).
-export([want/2, counts/1, load/3, delete/1, release/1, stop_all/0]).

tab() -> orrery_guard_v1_counts.

%% Owner Id counts exactly Mods (others it counted are released). Returns counts(Mods).
want(Id, Mods) when is_list(Mods) ->
    Had = [M || {{mod, M}, Owners, _, _, _} <- rows(), lists:member(Id, Owners)],
    [drop(Id, M) || M <- Had, not lists:member(M, Mods)],
    [add(Id, M) || M <- Mods, not lists:member(M, Had)],
    case Mods of
        [] -> orrery_guard_v1:forget_undo(Id, counts);
        _ -> orrery_guard_v1:undo_on_loss(Id, counts, {orrery_counts_v1, release, [Id]})
    end,
    counts(Mods).

%% Everything owner Id counted, released (its undo step, and a clean stop).
release(Id) ->
    [drop(Id, M) || {{mod, M}, Owners, _, _, _} <- rows(), lists:member(Id, Owners)],
    ok.

%% Every count off (the guard, when no Orrery is left).
stop_all() ->
    [off(M) || {{mod, M}, _, _, _, _} <- rows()],
    try ets:delete_all_objects(tab()) catch _:_ -> ok end,
    ok.

rows() ->
    try ets:tab2list(tab()) catch _:_ -> [] end.

add(Id, M) ->
    case ets:lookup(tab(), {mod, M}) of
        [{K, Owners, Since, Exact, Md5}] ->
            ets:insert(tab(), {K, lists:usort([Id | Owners]), Since, Exact, Md5});
        [] ->
            ets:insert(tab(), {{gen, M}, 0, 0}),
            ets:insert(tab(), {{mod, M}, [Id], now_ms(), true, nil}),
            _ = switch_on(M)
    end.

drop(Id, M) ->
    case ets:lookup(tab(), {mod, M}) of
        [{K, Owners, Since, Exact, Md5}] ->
            case lists:delete(Id, Owners) of
                [] -> off(M);
                Left -> ets:insert(tab(), {K, Left, Since, Exact, Md5})
            end;
        [] -> ok
    end.

off(M) ->
    case code:is_loaded(M) of
        false -> ok;
        _ -> try pattern(M, false) catch _:_ -> ok end
    end,
    try
        ets:match_delete(tab(), {{base, M, '_', '_'}, '_'}),
        ets:delete(tab(), {mod, M}),
        ets:delete(tab(), {gen, M})
    catch _:_ -> ok
    end,
    case [K || {{mod, _} = K, _, _, _, _} <- rows()] of
        [] -> try orrery_guard_v1:end_session(orrery_calls_v1) catch _:_ -> ok end;
        _ -> ok
    end,
    ok.

%% Counting on for the loaded code of M (starts its counters at 0); records that code.
switch_on(M) ->
    case code:is_loaded(M) of
        false -> false;
        _ ->
            N = pattern(M, true),
            case ets:lookup(tab(), {mod, M}) of
                [{K, Owners, Since, Exact, _}] ->
                    ets:insert(tab(), {K, Owners, Since, Exact, md5(M)});
                [] -> ok
            end,
            N > 0
    end.

%% Where the node has trace sessions (OTP 27+), Orrery counts in its own session
%% (orrery_calls_v1, held by the guard, traced into the guard), so a user's tracing and
%% Orrery's counts never touch; elsewhere with global call_count patterns, which need no
%% process trace flags. The functions matched (0: no session to count in).
pattern(M, On) ->
    case orrery_guard_v1:sessions() of
        false -> erlang:trace_pattern({M, '_', '_'}, On, [call_count]);
        true ->
            S = case {On, whereis(orrery_guard_v1)} of
                    {true, G} when is_pid(G), G =/= self() ->
                        orrery_guard_v1:session(orrery_calls_v1, G);
                    _ -> orrery_guard_v1:session_of(orrery_calls_v1)
                end,
            case S of
                none -> 0;
                _ -> erlang:apply(trace, function, [S, {M, '_', '_'}, On, [call_count]])
            end
    end.

%% A reader of one function's call_count, where pattern/2 set it.
reader() ->
    case orrery_guard_v1:sessions() of
        false -> fun(MFA) -> erlang:trace_info(MFA, call_count) end;
        true ->
            case orrery_guard_v1:session_of(orrery_calls_v1) of
                none -> fun(_) -> false end;
                S -> fun(MFA) -> erlang:apply(trace, info, [S, MFA, call_count]) end
            end
    end.

md5(M) ->
    try erlang:get_module_info(M, md5) catch _:_ -> nil end.

now_ms() -> erlang:system_time(millisecond).

%% Whether the loaded code of M is the code counting was switched on for, with counters.
%% When it is not (and it was switched on before), a load Orrery did not make came in
%% between: start again from 0, since now. A module loaded for the first time since
%% counting was wanted just gets its counters.
settle(M) ->
    case ets:lookup(tab(), {mod, M}) of
        [] -> none;
        [{K, Owners, Since, Exact, Md5}] ->
            case code:is_loaded(M) of
                false -> unloaded;
                _ ->
                    Ours = Md5 =/= nil andalso Md5 =:= md5(M) andalso counting(M),
                    if
                        Ours -> ok;
                        Md5 =:= nil -> switch_on(M), ok;
                        true ->
                            ets:match_delete(tab(), {{base, M, '_', '_'}, '_'}),
                            ets:insert(tab(), {K, Owners, Since, Exact, nil}),
                            switch_on(M),
                            ets:insert(tab(), {K, Owners, now_ms(), false, md5(M)}),
                            ok
                    end
            end
    end.

counting(M) ->
    Info = reader(),
    lists:any(fun({F, A}) ->
                      case Info({M, F, A}) of
                          {call_count, N} -> is_integer(N);
                          _ -> false
                      end
              end, funs(M)).

funs(M) ->
    try erlang:get_module_info(M, functions) catch _:_ -> [] end.

%% #{M => #{counts => #{{F, A} => N}, since => nil | Ms}} for the loaded modules of Mods
%% that someone counts: base + counter of each function the loaded code has (a function
%% gone with a swap is not shown; its base is kept, so a rollback brings it back).
counts(Mods) ->
    maps:from_list([{M, C} || M <- Mods, C <- [read(M, 100)], C =/= nil]).

read(M, Tries) ->
    case gen(M) of
        none -> nil;
        {_, Busy} when Busy > 0, Tries > 0 ->
            receive after 2 -> read(M, Tries - 1) end;
        G ->
            R = try read_now(M) catch _:_ -> nil end,
            case gen(M) of
                G -> R;
                _ when Tries > 0 -> read(M, Tries - 1);
                _ -> R
            end
    end.

gen(M) ->
    try ets:lookup(tab(), {gen, M}) of
        [{_, G, B}] -> {G, B};
        [] -> none
    catch _:_ -> none
    end.

read_now(M) ->
    case settle(M) of
        ok ->
            [{_, _, Since, Exact, _}] = ets:lookup(tab(), {mod, M}),
            Info = reader(),
            Counts = lists:foldl(
                       fun({F, A}, Acc) ->
                               case Info({M, F, A}) of
                                   {call_count, N} when is_integer(N) ->
                                       Acc#{{F, A} => N + base(M, F, A)};
                                   _ -> Acc
                               end
                       end, #{}, funs(M)),
            #{counts => Counts, since => case Exact of true -> nil; false -> Since end};
        _ -> nil
    end.

base(M, F, A) ->
    case ets:lookup(tab(), {base, M, F, A}) of
        [{_, N}] -> N;
        [] -> 0
    end.

%% ---- loads Orrery makes (orrery_swap_v1, the guard) --------------------------------

%% code:load_binary(M, File, Bin) keeping the counts of M, when someone counts M.
load(M, File, Bin) ->
    Counted = before_load(M),
    try code:load_binary(M, File, Bin)
    after after_load(M, Counted)
    end.

%% code:delete(M) keeping the counts of M, for a later load.
delete(M) ->
    Counted = before_load(M),
    try code:delete(M)
    after after_load(M, Counted)
    end.

%% Add the counters of the loaded code to the base, and say a load is going on.
before_load(M) ->
    case try ets:member(tab(), {mod, M}) catch _:_ -> false end of
        false -> false;
        true ->
            ets:update_counter(tab(), {gen, M}, {3, 1}, {{gen, M}, 0, 0}),
            case settle(M) of
                ok ->
                    Info = reader(),
                    [begin
                         case Info({M, F, A}) of
                             {call_count, N} when is_integer(N), N > 0 ->
                                 ets:update_counter(tab(), {base, M, F, A}, N,
                                                    {{base, M, F, A}, 0});
                             _ -> ok
                         end
                     end || {F, A} <- funs(M)];
                _ -> ok
            end,
            true
    end.

%% Counting on for the code now loaded (or, with M no longer loaded, for the next load).
after_load(_M, false) -> ok;
after_load(M, true) ->
    try
        case code:is_loaded(M) of
            false ->
                case ets:lookup(tab(), {mod, M}) of
                    [{K, Owners, Since, Exact, _}] ->
                        ets:insert(tab(), {K, Owners, Since, Exact, nil});
                    [] -> ok
                end;
            _ -> switch_on(M)
        end
    catch _:_ -> ok
    after
        try ets:update_counter(tab(), {gen, M}, [{2, 1}, {3, -1}]) catch _:_ -> ok end
    end,
    ok.
